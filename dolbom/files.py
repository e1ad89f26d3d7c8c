"""Dolbom's own files: where they live (``runtime_root``), and writing them so that a
reader never sees half of one."""

from __future__ import annotations

import contextlib
import os
import pwd
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: bytes, *, owner: str | None = None,
                 mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` (``mode``, whatever the umask): temp file, fsync,
    rename.

    A crash leaves the old file or the new one, never a mix. ``owner``: when we run
    as root, the user the file is given to (e.g. the broker's, which must read it).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(fd, "wb") as f:
            if mode != 0o600:
                os.fchmod(f.fileno(), mode)
            if owner is not None and os.geteuid() == 0:
                pw = pwd.getpwnam(owner)
                os.fchown(f.fileno(), pw.pw_uid, pw.pw_gid)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def runtime_root() -> Path:
    """Where the stack keeps server data: outside the clone so service users can reach it."""
    env = os.environ.get("DOLBOM_RUNTIME")
    if env:
        root = Path(env)
    elif os.geteuid() == 0:
        root = Path("/var/lib/dolbom-dev")
    else:
        root = Path.home() / ".local" / "state" / "dolbom"
    root.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        root.chmod(0o711)
    return root
