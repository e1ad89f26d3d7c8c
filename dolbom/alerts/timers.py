"""The rules' timers: one heap entry per home at its next deadline (300,000 homes are
never polled), ticked in slices so that messages and alarms get the event loop between
them."""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable
from functools import lru_cache

from dolbom.alerts.pause import pause

TIMER_BUDGET = 500  # timer heap entries handled before yielding to the event loop


@lru_cache(maxsize=1024)
def _second_ms(second: int) -> int:
    """Second ``second`` in ms, one object per second: a timer heap entry's time. An int
    of ms is 32 B, and 300,000 homes are due within a few minutes (DESIGN.md §7)."""
    return second * 1000


class TimerHeap:
    """Homes by deadline, rounded up to a second; at most one live entry per home."""

    def __init__(self) -> None:
        self._deadline: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._heap)

    def arm(self, home: str, real: int | None) -> None:
        """Keep one heap entry per home at its earliest deadline ``real`` (ms; None:
        nothing armed), rounded up to a second.

        A heartbeat moves a home's deadline later every minute: pushing each move would
        grow the heap without bound, so only an earlier deadline is pushed. Ticking a
        home early is harmless: ``RuleStates.run_timers`` re-arms it at its real
        deadline. Rounding lets the homes due in the same second share one int
        (``_second_ms``); ticking up to a second late changes nothing but when: what
        matured fires with the time it matured.
        """
        deadline = None if real is None else _second_ms(-(-real // 1000))
        current = self._deadline.get(home)
        if deadline is not None and (current is None or deadline < current):
            self._deadline[home] = deadline
            heapq.heappush(self._heap, (deadline, home))

    def pop_due(self, now: int) -> tuple[int, str] | None:
        """The earliest entry if it is due by ``now``, taken off the heap; else None."""
        if self._heap and self._heap[0][0] <= now:
            return heapq.heappop(self._heap)
        return None

    def take(self, entry: tuple[int, str]) -> bool:
        """``entry`` (from ``pop_due``) is its home's live one: forget it and say True;
        False if an earlier schedule superseded it."""
        deadline, home = entry
        if self._deadline.get(home) != deadline:
            return False
        del self._deadline[home]
        return True


async def run_timers(tick: Callable[[int], int], stopping: asyncio.Event,
                     tick_s: float) -> None:
    """Every ``tick_s`` until ``stopping``, ``tick(budget)`` (``RuleStates.run_timers``:
    how many heap entries it took) until it takes fewer than a budget."""
    while not stopping.is_set():
        while tick(TIMER_BUDGET) == TIMER_BUDGET:  # noqa: ASYNC110 - a yield
            await asyncio.sleep(0)  # let messages (and alarms) in between
        await pause(stopping, tick_s)
