"""Devices' last-seen times and last status, written to the registry every
``seen_flush_s`` (the alerts service reads them after a restart).

Only what matters is written: a device's time is rewritten once the stored one is
``granularity_s`` older than its newest message, or with a new status, or the first
time ingest hears it. A device heard continuously is thus rewritten every
``granularity_s`` (rounded up to flushes), not at every flush.

The bound (docs/ingest.md "Last seen"): the registry's time lags a device's last
message received before a flush by less than ``granularity_s``. For a device that
promised an interval ``hb`` ≥ ``seen_flush_s`` and keeps it, an alerts service
restarting at any moment re-arms the lost deadline at most ``2·hb + granularity_s``
before the device's next message, so it never raises a false device_lost while
``granularity_s < (lost_factor − 2) · hb`` (lost_factor 3: below the shortest
heartbeat interval in use, 60 s by default). So the granularity used is never more than
the shortest heartbeat an active device promised less ``HB_MARGIN_S`` (``shortest_hb``,
from the registry): a fleet with a 10 s device writes at every flush, as before.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, MutableMapping

from sqlalchemy.orm import Session, sessionmaker

from dolbom.ingest.metrics import IngestMetrics
from dolbom.registry import service as registry

log = logging.getLogger("dolbom.ingest")

SEEN_CHUNK = 500  # devices per last-seen transaction (a short hold of the write lock)
HB_MARGIN_S = 15  # the granularity stays this far below the shortest heartbeat (jitter)

DeviceStatus = tuple[str, int | None, str | None]  # (state, boot, firmware)


class SeenRecorder:
    def __init__(self, sessions: sessionmaker[Session], metrics: IngestMetrics,
                 granularity_s: float = 45.0,
                 shortest_hb: Callable[[], int | None] = lambda: None,
                 stored: MutableMapping[str, int] | None = None) -> None:
        self.sessions, self.metrics = sessions, metrics
        self.granularity_ms = int(granularity_s * 1000)
        self.shortest_hb = shortest_hb
        # last receive time (ms) and last status per device since the last registry write
        self.new: dict[str, int] = {}
        self.status: dict[str, DeviceStatus] = {}
        # the time (ms) last written per device: every device heard since start (the
        # service keeps them on its device index, devices.SeenTimes: those still in it)
        self.stored: MutableMapping[str, int] = {} if stored is None else stored

    def effective_granularity_ms(self) -> int:
        """``granularity_s``, but never more than the shortest heartbeat in the registry
        less ``HB_MARGIN_S`` (see the module)."""
        hb = self.shortest_hb()
        if hb is None:
            return self.granularity_ms
        return min(self.granularity_ms, max(0, (hb - HB_MARGIN_S) * 1000))

    def count(self) -> int:
        """Devices heard from since start."""
        stored = self.stored
        return len(stored) + sum(1 for d in self.new if d not in stored)

    def due(self) -> list[registry.SeenRow]:
        """Take the devices heard since the last write; return the rows worth writing."""
        seen, self.new = self.new, {}
        status, self.status = self.status, {}
        stored, g = self.stored, self.effective_granularity_ms()
        rows: list[registry.SeenRow] = []
        for d, ms in seen.items():
            st = status.get(d)
            if st is not None:
                rows.append((d, ms, *st))
            else:
                old = stored.get(d)
                if old is None or ms - old >= g:
                    rows.append((d, ms, None, None, None))
        return rows

    async def write(self) -> None:
        if not self.new:
            return
        rows = self.due()
        if not rows:
            return

        def update() -> None:
            # In chunks: one transaction per chunk, so a whole fleet's update never
            # holds the (SQLite) write lock long enough to delay an alarm's journal.
            for i in range(0, len(rows), SEEN_CHUNK):
                with self.sessions.begin() as s:
                    registry.record_devices_seen(s, rows[i:i + SEEN_CHUNK])

        try:
            await asyncio.to_thread(update)
        except Exception:
            log.exception("could not record last-seen times; will retry")
            for d, ms, state, boot, fw in rows:
                self.new.setdefault(d, ms)
                if state is not None:
                    self.status.setdefault(d, (state, boot, fw))
            return
        stored = self.stored
        for d, ms, *_ in rows:
            if ms > stored.get(d, -1):
                stored[d] = ms
        self.metrics.devices_online.set(len(stored))
