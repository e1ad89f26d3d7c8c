"""The alarm process itself: ``serve`` (``dolbom alerts alarms``, or ``python -m
dolbom.alerts.alarm --settings-stdin`` as ``spawn`` starts it for the rules process)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pickle
import signal
import sys

from dolbom.alerts.alarm.lock import ALREADY_RUNNING, alarm_lock_path, lock_holder, take_lock
from dolbom.alerts.alarm.process import AlarmProcess
from dolbom.alerts.leader import Lease, LeaseLost
from dolbom.alerts.settings import AlertsSettings

log = logging.getLogger("dolbom.alerts.alarm")
LEASE_LOST = 3  # exit status of an active alarm process that lost its lease (restarted)
CANCEL_WAIT_S = 5.0


async def spawn(settings: AlertsSettings) -> asyncio.subprocess.Process:
    """Start the alarm process for this service; settings go over a pipe.

    A session of its own (``start_new_session``) and no parent-death signal: it must
    outlive a rules process that is killed or stopped (see the package's docstring)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dolbom.alerts.alarm", "--settings-stdin",
        stdin=asyncio.subprocess.PIPE, start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps(settings))
    await proc.stdin.drain()
    proc.stdin.close()
    return proc


def serve(settings: AlertsSettings) -> int:
    """Run the alarm process until SIGTERM or SIGINT; the exit status.

    ``ALREADY_RUNNING`` when another alarm process holds the lock: two would take each
    other's broker session (one client id) over and over."""
    lock = alarm_lock_path(settings)
    try:
        fd = take_lock(lock)
    except OSError as e:
        print(f"dolbom alerts alarms: cannot open the lock file {lock}: {e.strerror}",
              file=sys.stderr)
        return 1
    if fd is None:
        print(f"dolbom alerts alarms: an alarm process is already running "
              f"(pid {lock_holder(lock) or '?'}, lock {lock})", file=sys.stderr)
        return ALREADY_RUNNING

    try:
        return asyncio.run(_run(settings))
    finally:
        os.close(fd)


async def _run(settings: AlertsSettings) -> int:
    """Stand by until this process holds the cell's alarm lease (at once on SQLite),
    then run the life-safety path while checking the lease; stop at once if it is lost
    (``LEASE_LOST``: restarted, it stands by)."""
    proc = AlarmProcess(settings)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, proc.stopping.set)
    lease = Lease(settings.database_url, f"alarm:{settings.alerts.cell}")
    try:
        if not await lease.acquire(proc.stopping):
            return 0
        running = asyncio.create_task(proc.run(), name="alarm-process")
        held = asyncio.create_task(lease.hold(proc.stopping), name="alarm-lease")
        await asyncio.wait({running, held}, return_when=asyncio.FIRST_COMPLETED)
        if held.done() and isinstance(held.exception(), LeaseLost):
            log.error("%s", held.exception())
            running.cancel()  # not a graceful stop: another may be journalling already
            await asyncio.wait({running}, timeout=CANCEL_WAIT_S)
            return LEASE_LOST
        proc.stopping.set()
        await running
        await held
        return 0
    finally:
        lease.release()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dolbom.alerts.alarm",
                                     description="the alarm process, as `dolbom alerts run` "
                                     "spawns it (run on its own: `dolbom alerts alarms`)")
    parser.add_argument("--settings-stdin", action="store_true", required=True,
                        help="read the service's settings (pickled) from stdin")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - our parent, over a pipe
    if not isinstance(settings, AlertsSettings):
        print("dolbom alerts: the alarm process expects the service's settings on stdin",
              file=sys.stderr)
        return 2
    return serve(settings)
