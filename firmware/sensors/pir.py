# PIR motion sensor (HC-SR501 / AM312): output high on motion. The edge is caught by
# an interrupt, so a short pulse between polls is never missed; a hold-off limits
# reports to one ``motion`` event per ``holdoff_s`` (enough for inactivity rules).
import asyncio
import time

import hw


class HoldOff:
    def __init__(self, holdoff_ms: int) -> None:
        self.holdoff_ms = holdoff_ms
        self._last: int | None = None

    def feed(self, now: int) -> bool:
        """True if a motion at ``now`` should be reported."""
        if self._last is not None and time.ticks_diff(now, self._last) < self.holdoff_ms:
            return False
        self._last = now
        return True


class Driver:
    name = "pir"

    def __init__(self, opts: dict, emit) -> None:
        self.emit = emit
        self.pin_n = opts["pin"]
        self.pin = hw.PinIn(self.pin_n, pull_up=False)
        self.hold = HoldOff(opts.get("holdoff_s", 30) * 1000)
        self._edge = False
        self.pin.on_edge(self._irq, rising=True, falling=False)
        self.wake_high: list = [self.pin_n]
        self.wake_low: list = []

    def _irq(self, _pin) -> None:
        self._edge = True  # nothing else in interrupt context

    def woke(self) -> None:
        """Deep-sleep wake: motion may be what woke us."""
        if self.pin.value():
            self._edge = True

    async def run(self) -> None:
        while True:
            if self._edge:
                self._edge = False
                if self.hold.feed(hw.ticks_ms()):
                    self.emit("motion", None)
            await asyncio.sleep_ms(50)
