"""Messages timed by our clock get their first receive time (DESIGN.md §3: the same time
on every delivery), recorded durably in ``ReceiveTimes`` before their points are made."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dolbom.ingest.batch import Batch
from dolbom.ingest.receive_times import ReceiveTimes
from dolbom.ingest.rollup import Rollup

PRUNE_EVERY_MS = 60_000  # first receive times past their retention are deleted this often


class Stamper:
    def __init__(self, times: ReceiveTimes, rollup: Rollup, clock: Callable[[], float]) -> None:
        self.times, self.rollup, self.clock = times, rollup, clock
        self._pruned_at = 0  # ms, on self.clock

    async def stamp(self, batch: Batch) -> None:
        """Give the batch's messages timed by our clock their first receive time, recorded
        durably before this returns (so before their points are written), and add their
        points to the batch. Also prunes the store now and then."""
        now_ms = int(self.clock() * 1000)
        prune = now_ms - self._pruned_at >= PRUNE_EVERY_MS
        if not batch.timed and not prune:
            return
        timed = batch.timed
        lookups = [t[0] for t in timed]

        def resolve() -> list[int | None]:
            out = self.times.resolve(lookups)
            if prune:
                self.times.prune(now_ms)
            return out

        bases = await asyncio.to_thread(resolve)
        if prune:
            self._pruned_at = now_ms
        batch.timed = []
        rollup = self.rollup
        for (_, env_ts, event, lines, site, home, samples), found in zip(
                timed, bases, strict=True):
            base = env_ts if found is None else found
            out = batch.events if event else batch.telemetry
            for line, offset in lines:
                out.append(f"{line} {base + offset}".encode())
            if home is not None:
                for offset, readings in samples:
                    rollup.add(site, home, base + offset, dict(readings))
