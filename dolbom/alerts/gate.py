"""One database writer at a time in the alerts service, life-safety first.

SQLite has one writer per database; threads of one process that write at once
queue inside SQLite's busy handler, which sleeps in steps of up to 100 ms and
serves nobody in particular. Here the writes of this process queue in the event
loop instead, and a life-safety journal write goes ahead of every rule-state,
escalation and outbox write that waits (DESIGN.md §7: alarm latency under load).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
URGENT, NORMAL = 0, 1


class WriteGate:
    def __init__(self) -> None:
        self._busy = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = 0
        self.waited_urgent = 0  # urgent writes that found the gate taken

    async def run(self, fn: Callable[[], T], *, urgent: bool = False) -> T:
        """Run ``fn`` (blocking database work) in a worker thread when it is its turn."""
        await self._acquire(URGENT if urgent else NORMAL)
        try:
            return await asyncio.to_thread(fn)
        finally:
            self._release()

    async def _acquire(self, priority: int) -> None:
        if not self._busy and not self._waiters:
            self._busy = True
            return
        if priority == URGENT:
            self.waited_urgent += 1
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (priority, self._seq, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self._release()  # handed over just as we were cancelled: pass it on
            raise

    def _release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # the gate passes to it, still busy
                return
        self._busy = False
