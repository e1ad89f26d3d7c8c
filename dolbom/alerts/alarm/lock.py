"""The alarm process's lock: every alarm process holds ``alarm_lock_path`` locked
(``flock``, released by the kernel however the holder dies); one that finds it held
exits at once (``ALREADY_RUNNING``), and the rules process reads the holder's PID."""

from __future__ import annotations

import fcntl
import hashlib
import os
import tempfile
import time
from pathlib import Path

from dolbom.alerts.settings import AlertsSettings

ALREADY_RUNNING = 75  # exit status (EX_TEMPFAIL) of an alarm process that found the lock held
LOCK_WAIT_S = 2.0  # a starting alarm process waits this long for the lock to come free


def alarm_lock_path(settings: AlertsSettings) -> Path:
    """The lock file of the alarm process of these settings: ``alarm_lock_file``, or one
    in the temporary directory named for the database, the broker and the alarm session's
    client id (a hash: the database URL may hold a password)."""
    if settings.alerts.alarm_lock_file is not None:
        return settings.alerts.alarm_lock_file
    m = settings.mqtt
    key = f"{settings.database_url}|{m.host}:{m.port}|{settings.alerts.alarm_client_id}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"dolbom-alarms-{digest}.lock"


def take_lock(path: Path, wait_s: float = LOCK_WAIT_S) -> int | None:
    """Lock ``path`` for this process's lifetime and write its PID in it; the open file
    descriptor, or None when another process holds it. The kernel releases it however
    this process ends, so no stale lock survives a SIGKILL."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.1)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def lock_holder(path: Path) -> int | None:
    """The PID of the alarm process holding ``path`` (0 when it has not written it yet),
    or None when nobody holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
