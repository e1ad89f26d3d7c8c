"""Waiting inside the service's tasks: a sleep that ends early when the service stops, and
a job run every so often until then."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


async def nap(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stopping`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)


async def every(stopping: asyncio.Event, seconds: float,
                job: Callable[[], Awaitable[None]]) -> None:
    """Run ``job`` each ``seconds`` (after the first wait) until ``stopping`` is set."""
    while not stopping.is_set():
        await nap(stopping, seconds)
        await job()
