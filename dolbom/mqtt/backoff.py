"""The one reconnect policy: capped, jittered exponential backoff ("full jitter")."""

from __future__ import annotations

import random

RECONNECT_INITIAL_S = 0.5
RECONNECT_CAP_S = 15.0


class Backoff:
    """Capped, jittered exponential backoff: the n-th delay is drawn from
    [d/2, d] with d = min(cap, initial x 2^n), so clients that lost the same broker
    do not come back in step."""

    def __init__(self, initial: float = RECONNECT_INITIAL_S, cap: float = RECONNECT_CAP_S
                 ) -> None:
        self.initial, self.cap = initial, cap
        self.attempt = 0

    def next_delay(self) -> float:
        delay = jittered(self.initial, self.cap, self.attempt)
        self.attempt += 1
        return delay

    def reset(self) -> None:
        self.attempt = 0


def jittered(initial: float, cap: float, attempt: int) -> float:
    """The delay before retry ``attempt`` (0 first): drawn from [d/2, d] with
    d = min(cap, initial x 2^attempt). For retries whose count is stored (a notification's
    attempts in the outbox) rather than held in a ``Backoff``."""
    delay = min(cap, initial * (2**attempt))
    return random.uniform(delay / 2, delay)


def reconnect_backoff() -> Backoff:
    """The broker reconnect policy every session uses."""
    return Backoff(RECONNECT_INITIAL_S, RECONNECT_CAP_S)
