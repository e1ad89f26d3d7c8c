"""Devices' last-seen times and last status, written to the registry every
``seen_flush_s`` (the alerts service reads them after a restart)."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from dolbom.ingest.metrics import IngestMetrics
from dolbom.registry import service as registry

log = logging.getLogger("dolbom.ingest")

SEEN_CHUNK = 500  # devices per last-seen transaction (a short hold of the write lock)

DeviceStatus = tuple[str, int | None, str | None]  # (state, boot, firmware)


class SeenRecorder:
    def __init__(self, sessions: sessionmaker[Session], metrics: IngestMetrics) -> None:
        self.sessions, self.metrics = sessions, metrics
        # last receive time (ms) and last status per device since the last registry write
        self.new: dict[str, int] = {}
        self.status: dict[str, DeviceStatus] = {}
        self.devices_seen: set[str] = set()

    def count(self) -> int:
        """Devices heard from since start."""
        return len(self.devices_seen | self.new.keys())

    async def write(self) -> None:
        if not self.new:
            return
        seen, self.new = self.new, {}
        status, self.status = self.status, {}
        self.devices_seen.update(seen)
        self.metrics.devices_online.set(len(self.devices_seen))
        rows = [(d, datetime.fromtimestamp(ms / 1000, UTC), *status.get(d, (None, None, None)))
                for d, ms in seen.items()]

        def update() -> None:
            # In chunks: one transaction per chunk, so a whole fleet's update never
            # holds the (SQLite) write lock long enough to delay an alarm's journal.
            for i in range(0, len(rows), SEEN_CHUNK):
                with self.sessions.begin() as s:
                    registry.update_device_seen(s, rows[i:i + SEEN_CHUNK])

        try:
            await asyncio.to_thread(update)
        except Exception:
            log.exception("could not record last-seen times; will retry")
            for d, ms in seen.items():
                self.new.setdefault(d, ms)
            for d, st in status.items():
                self.status.setdefault(d, st)
