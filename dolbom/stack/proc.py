"""Starting and stopping real server processes, each by its own PID.

When run as root, each server runs as its own Debian service user (``mosquitto``,
``influxdb``, ``postgres``): least privilege, and PostgreSQL refuses root anyway.
Its directory is then owned by that user, and the runtime root is traversable
(0711) so that user can reach it.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

# runtime_root lives in dolbom.files (services below the stack use it too); re-exported
# for the stack's own callers (tests, benchmarks, the demo).
from dolbom.files import runtime_root as runtime_root  # noqa: PLC0414
from dolbom.stack.errors import StackError


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_user(name: str) -> str | None:
    """The user a server runs as: ``name`` when we are root (and it exists), else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(name)
    except KeyError:
        raise StackError(
            f"user {name!r} does not exist: install the Debian package that creates it"
        ) from None
    return name


def give_to(path: Path, user: str | None) -> None:
    """Make ``path`` (recursively) owned by ``user`` when we run as root."""
    if user is None:
        return
    pw = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid, follow_symlinks=False)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float, what: str,
              log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode} at start-up"
                             + (f"; see {log}" if log else ""))
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise StackError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise StackError(f"timed out waiting for {what}")


def start(argv: list[str], log: Path, user: str | None, cwd: Path | None = None
          ) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        # start_new_session: Ctrl-C in the terminal reaches our supervisor only,
        # which then stops each server in order.
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            user=user, cwd=cwd, start_new_session=True,
        )


def stop(proc: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    """SIGTERM the process we started, then SIGKILL it if it does not exit."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def kill9(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def which(*candidates: str) -> str:
    for c in candidates:
        if os.path.isabs(c) and os.access(c, os.X_OK):
            return c
        for d in [*os.environ.get("PATH", "").split(":"), "/usr/sbin", "/usr/bin", "/sbin"]:
            p = os.path.join(d, c)
            if os.access(p, os.X_OK):
                return p
    raise StackError(f"{candidates[0]} not found: run ./dev setup (it installs Debian packages)")
