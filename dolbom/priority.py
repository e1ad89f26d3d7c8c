"""CPU priority of a service's process: the bulk work (every message stored, every home's
rules) yields the CPU to the life-safety path when the machine is short of it.

On a machine the broker, InfluxDB, ingest and the rules keep busy, a press's journal
write in the alarm process is slow not for its own work (a few ms of CPU) but because it
waits for a turn on a core. With ingest and the rules process at a higher nice value
than the alarm process, Linux's scheduler gives the alarm process the larger share
while it runs, and the bulk work takes what is left; nothing changes while the machine
has CPU to spare. The broker and InfluxDB are left as their deployment starts them.

Linux keeps the nice value per thread and a new thread or child process inherits its
creator's: a service lowers its priority at start, before it starts any thread, and the
alarm process the rules process spawns sets its own back (``restore``), which an
unprivileged process may do only within its ``RLIMIT_NICE`` (systemd: ``LimitNICE=``).
``can_restore`` tells the rules process beforehand whether its alarm process could.
"""

from __future__ import annotations

import logging
import os
import resource
from collections.abc import Callable

log = logging.getLogger("dolbom.priority")

NICE_MIN, NICE_MAX = 0, 19  # what the settings allow: never above normal priority


def current() -> int:
    """This thread's nice value."""
    return os.getpriority(os.PRIO_PROCESS, 0)


def can_restore(to: int, *, euid: Callable[[], int] = os.geteuid,
                limit: Callable[[], int] | None = None) -> bool:
    """Whether this process (and a child) may set its nice value back down to ``to``:
    as root, or when ``RLIMIT_NICE``'s soft limit (20 − the lowest nice allowed) lets it."""
    if euid() == 0:
        return True
    soft = limit() if limit is not None else resource.getrlimit(resource.RLIMIT_NICE)[0]
    return soft == resource.RLIM_INFINITY or 20 - soft <= to


def lower(to: int, what: str) -> int:
    """Set this thread's nice value to ``to`` if that is lower priority than now (a
    service's first step). The nice value it runs at."""
    now = current()
    if to > now:
        os.setpriority(os.PRIO_PROCESS, 0, to)
        log.info("%s runs at nice %d (bulk work yields the CPU to the alarm path)", what, to)
        return to
    return now


def restore(to: int, what: str) -> int:
    """Set this thread's nice value back to ``to`` if it inherited a higher one (the
    alarm process spawned by a rules process that lowered its own). The nice value it
    runs at; when it may not, a warning that says what to change."""
    now = current()
    if now <= to:
        return now
    try:
        os.setpriority(os.PRIO_PROCESS, 0, to)
    except PermissionError:
        log.warning("%s runs at nice %d, not %d: this user may not raise a priority "
                    "(RLIMIT_NICE); give the service LimitNICE=%+d or run it on its own "
                    "(alarm_process=external)", what, now, to, to)
        return now
    log.info("%s runs at nice %d", what, to)
    return to
