"""A service's loops wait on an event with a bound: a pass every so often that ends at
once when the service stops (``stopping``) or there is work (a wake-up event)."""

from __future__ import annotations

import asyncio
import contextlib


async def pause(event: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less if ``event`` is set first."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), seconds)
