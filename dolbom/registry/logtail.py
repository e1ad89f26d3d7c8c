"""Following a log file that another process appends to, rotates and truncates.

``LogTail.read_lines`` returns the complete lines written since its last call. It
starts at the end of the file (what was logged before it ran is history, not news)
unless it is given the position it stopped at. It follows the name, as ``tail -F``:

- rotation (the file renamed and a new one created, then SIGHUP for mosquitto): the
  old file is read to its end, then the new one from its start;
- truncation (``copytruncate``): reading starts again at the beginning;
- a missing file: nothing, until it appears.

Memory is bounded: at most ``max_read`` bytes per call, and a line longer than
``max_line`` is dropped (counted in ``overlong``), never buffered whole.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Position:
    """Where reading stopped: the file (device, inode) and the offset in it."""

    dev: int
    ino: int
    offset: int


class LogTail:
    def __init__(self, path: Path, *, start: Position | None = None, max_read: int = 1 << 20,
                 max_line: int = 16 << 10) -> None:
        self.path = path
        self.max_read = max_read
        self.max_line = max_line
        self._start = start
        self._first = True  # the first file opened starts at its end (or at ``start``)
        self._fd: int | None = None
        self._id: tuple[int, int] = (0, 0)
        self._offset = 0
        self._partial = b""
        self._skipping = False  # inside an over-long line: drop until its newline
        self.rotations = 0
        self.truncations = 0
        self.overlong = 0

    @property
    def position(self) -> Position | None:
        """Where the next read starts (the start of the unfinished line, if any)."""
        if self._fd is None:
            return None
        return Position(*self._id, self._offset - len(self._partial))

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return False
        st = os.fstat(fd)
        self._fd, self._id = fd, (st.st_dev, st.st_ino)
        self._partial, self._skipping = b"", False
        offset = 0
        if self._first:
            offset = st.st_size
            s = self._start
            if s is not None and (s.dev, s.ino) == self._id and s.offset <= st.st_size:
                offset = s.offset
            elif s is not None:
                offset = 0  # rotated while we were not running: the new file is all news
        self._first = False
        self._offset = os.lseek(fd, offset, os.SEEK_SET)
        return True

    def _replaced(self) -> bool:
        """At the end of the open file: has the name moved on to another file, or was
        this one truncated under us? Positions the tail for the next read."""
        assert self._fd is not None
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return False  # renamed, the new one not created yet: keep the old one open
        if (st.st_dev, st.st_ino) != self._id:
            self.close()
            self.rotations += 1
            return self._open()
        if st.st_size < self._offset:
            self.truncations += 1
            self._offset = os.lseek(self._fd, 0, os.SEEK_SET)
            self._partial, self._skipping = b"", False
            return True
        return False

    def read_lines(self) -> list[bytes]:
        """Complete lines (without their newline) written since the last call."""
        if self._fd is None and not self._open():
            return []
        assert self._fd is not None
        chunk = os.read(self._fd, self.max_read)
        if not chunk:
            if not self._replaced():
                return []
            assert self._fd is not None
            chunk = os.read(self._fd, self.max_read)
        self._offset += len(chunk)
        return self._split(chunk)

    def _split(self, chunk: bytes) -> list[bytes]:
        lines = chunk.split(b"\n")
        rest = lines.pop()  # after the last newline: an unfinished line
        out: list[bytes] = []
        if lines:
            lines[0], self._partial = self._partial + lines[0], b""
            if self._skipping:  # the end of an over-long line
                self._skipping = False
                del lines[0]
        for line in lines:
            if len(line) > self.max_line:
                self.overlong += 1
                continue
            out.append(line)
        if not self._skipping:
            self._partial += rest
            if len(self._partial) > self.max_line:
                self.overlong += 1
                self._partial, self._skipping = b"", True
        return out
