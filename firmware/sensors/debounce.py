# Shared pure logic for digital inputs: a debouncer and a confirmed alarm input.
import time


class Debouncer:
    """Reports a level only after it held for ``ms``: contact bounce and brief
    glitches never become events."""

    def __init__(self, ms: int, level: int, now: int) -> None:
        self.ms = ms
        self.stable = level
        self._cand = level
        self._since = now

    def feed(self, level: int, now: int):
        """The new stable level if it just changed, else None."""
        if level != self._cand:
            self._cand = level
            self._since = now
            return None
        if level != self.stable and time.ticks_diff(now, self._since) >= self.ms:
            self.stable = level
            return level
        return None


class AlarmInput:
    """An alarm line (gas, smoke): raised after it is active for ``confirm_ms``
    without a break, re-armed after it is clear for ``clear_ms``. A sensor that
    flickers never raises a false alarm (DESIGN.md §1: 18.6 % false dispatches)."""

    def __init__(self, confirm_ms: int, clear_ms: int, now: int) -> None:
        self.confirm_ms = confirm_ms
        self.clear_ms = clear_ms
        self.raised = False
        self._active_since: int | None = None
        self._clear_since: int | None = now

    def feed(self, active: bool, now: int) -> bool:
        """True exactly once per alarm, when it is confirmed."""
        if active:
            self._clear_since = None
            if self._active_since is None:
                self._active_since = now
            if not self.raised and time.ticks_diff(now, self._active_since) >= self.confirm_ms:
                self.raised = True
                return True
            return False
        self._active_since = None
        if self._clear_since is None:
            self._clear_since = now
        if self.raised and time.ticks_diff(now, self._clear_since) >= self.clear_ms:
            self.raised = False
        return False
