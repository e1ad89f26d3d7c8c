"""A bounded disk spool for points while InfluxDB is unavailable.

Each spooled batch is one file of line protocol, written to a temp name,
fsync'd and renamed, so a crash leaves either the whole batch or nothing.
Events (and statuses) and telemetry are kept in separate directories: when the
telemetry directory passes its byte cap the oldest telemetry files are dropped
(and counted); events are never dropped (ISSUE: "never events").
Files are named by a monotonic sequence so replay goes oldest first.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class SpoolFile:
    path: Path
    event: bool


class Spool:
    def __init__(self, directory: Path, max_telemetry_bytes: int) -> None:
        self.dir = directory
        self.events_dir = directory / "events"
        self.telemetry_dir = directory / "telemetry"
        for d in (self.events_dir, self.telemetry_dir):
            d.mkdir(parents=True, exist_ok=True)
            for stale in d.glob("*.tmp"):
                stale.unlink()  # an interrupted write: its messages were never acked
        self.max_telemetry_bytes = max_telemetry_bytes
        existing = [self._seq(p) for p in self._files()]
        self._next = max(existing, default=0) + 1
        self._telemetry_bytes = sum(p.stat().st_size for p in self.telemetry_dir.glob("*.lp"))
        self.dropped_points = 0

    @staticmethod
    def _seq(p: Path) -> int:
        return int(p.stem)

    def _files(self) -> list[Path]:
        return [*self.events_dir.glob("*.lp"), *self.telemetry_dir.glob("*.lp")]

    def __len__(self) -> int:
        return len(self._files())

    @property
    def empty(self) -> bool:
        return not any(self.events_dir.glob("*.lp")) and not any(self.telemetry_dir.glob("*.lp"))

    def put(self, lines: list[bytes], event: bool) -> None:
        """Store a batch durably. Blocking (fsync): call it from a worker thread."""
        if not lines:
            return
        d = self.events_dir if event else self.telemetry_dir
        seq = self._next
        self._next += 1
        tmp = d / f"{seq:012d}.tmp"
        data = b"\n".join(lines) + b"\n"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.rename(d / f"{seq:012d}.lp")
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
        if not event:
            self._telemetry_bytes += len(data)
            self._enforce_cap()

    def _enforce_cap(self) -> None:
        if self._telemetry_bytes <= self.max_telemetry_bytes:
            return
        for p in sorted(self.telemetry_dir.glob("*.lp"), key=self._seq):
            if self._telemetry_bytes <= self.max_telemetry_bytes:
                break
            size = p.stat().st_size
            self.dropped_points += p.read_bytes().count(b"\n")
            p.unlink()
            self._telemetry_bytes -= size

    def oldest(self) -> SpoolFile | None:
        """The next file to replay: events first (they matter most), then telemetry."""
        for d, event in ((self.events_dir, True), (self.telemetry_dir, False)):
            files = sorted(d.glob("*.lp"), key=self._seq)
            if files:
                return SpoolFile(files[0], event)
        return None

    @staticmethod
    def read(f: SpoolFile) -> list[bytes]:
        return [ln for ln in f.path.read_bytes().split(b"\n") if ln]

    def done(self, f: SpoolFile) -> None:
        if not f.event:
            self._telemetry_bytes -= f.path.stat().st_size
        f.path.unlink()
