# Emergency button (pendant or wall push), to GND with the pull-up: 0 = pressed.
# A debounced press reports ``button`` "press" at once (every second counts); if it
# is held for ``long_ms`` a second ``button`` "long" follows. Both are life-safety
# events, kept on flash until acknowledged.
#
# The pin is polled (debounce) and also latched by its falling-edge interrupt: if the
# event loop was ever held up (a blocking DNS lookup in the port's C code, a long flash
# write) for longer than a short press, the interrupt still saw it and it is reported.
import asyncio
import time

import hw
from sensors.debounce import Debouncer


class PressLogic:
    def __init__(self, debounce_ms: int, long_ms: int, level: int, now: int) -> None:
        self.deb = Debouncer(debounce_ms, level, now)
        self.long_ms = long_ms
        self._down_at: int | None = None
        self._long_sent = False
        self._edge_at: int | None = None
        self._released_at: int | None = None

    def edge(self, now: int) -> None:
        """A falling edge seen by the interrupt (a press began, or contact bounce)."""
        self._edge_at = now

    def feed(self, level: int, now: int):
        """"press", "long" or None."""
        s = self.deb.feed(level, now)
        if s == 0:
            self._down_at = now
            self._long_sent = False
            self._edge_at = None
            return "press"
        if s == 1:
            self._down_at = None
            self._released_at = now
            self._edge_at = None
            return None
        e = self._edge_at
        if e is not None and self.deb.stable == 1 and level == 1:
            # Released again and the poll never saw it down: a press shorter than a
            # stalled poll. Edges just after a release are its contact bounce; an edge
            # younger than two debounce periods may still become a polled press.
            if self._released_at is not None and \
                    time.ticks_diff(e, self._released_at) <= 3 * self.deb.ms:
                self._edge_at = None
            elif time.ticks_diff(now, e) >= 2 * self.deb.ms:
                self._edge_at = None
                return "press"
        if (self._down_at is not None and not self._long_sent
                and time.ticks_diff(now, self._down_at) >= self.long_ms):
            self._long_sent = True
            return "long"
        return None


class Driver:
    name = "button"

    def __init__(self, opts: dict, emit) -> None:
        self.emit = emit
        self.pin_n = opts["pin"]
        self.pin = hw.PinIn(self.pin_n, pull_up=True)
        self.logic = PressLogic(opts.get("debounce_ms", 30), opts.get("long_ms", 3000), 1,
                                hw.ticks_ms())
        self.pin.on_edge(self._irq, rising=False, falling=True)
        self.wake_low: list = [self.pin_n]
        self.wake_high: list = []

    def _irq(self, _pin) -> None:
        self.logic.edge(hw.ticks_ms())

    def woke(self) -> None:
        # Woken by the button: the press happened before we could debounce it.
        if self.pin.value() == 0:
            self.emit("button", "press")
            self.logic = PressLogic(self.logic.deb.ms, self.logic.long_ms, 0, hw.ticks_ms())

    async def run(self) -> None:
        while True:
            v = self.logic.feed(self.pin.value(), hw.ticks_ms())
            if v is not None:
                self.emit("button", v)
            await asyncio.sleep_ms(10)
