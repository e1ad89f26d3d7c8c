# Door reed switch: the magnet closes the contact to GND, so with the pull-up the
# pin reads 0 when the door is closed and 1 when it is open. Debounced; reports
# ``door`` with "open"/"closed" on every settled change.
import asyncio

import hw
from sensors.debounce import Debouncer


def val(level: int) -> str:
    return "open" if level else "closed"


class Driver:
    name = "door"

    def __init__(self, opts: dict, emit) -> None:
        self.emit = emit
        self.pin_n = opts["pin"]
        self.pin = hw.PinIn(self.pin_n, pull_up=True)
        self.deb = Debouncer(opts.get("debounce_ms", 50), self.pin.value(), hw.ticks_ms())
        self.last_sent = -1  # set by the node from RTC memory across deep sleep
        self.wake_low: list = []
        self.wake_high: list = []

    def plan_wake(self) -> None:
        # Wake on the change away from the current state: a closed door (0) wakes
        # on going high; an open one cannot use ext1 ANY_HIGH and uses ext0 low.
        if self.deb.stable:
            self.wake_low, self.wake_high = [self.pin_n], []
        else:
            self.wake_low, self.wake_high = [], [self.pin_n]

    def woke(self) -> None:
        level = self.pin.value()
        if self.last_sent != -1 and level != self.last_sent:
            self.last_sent = level
            self.emit("door", val(level))

    async def run(self) -> None:
        while True:
            level = self.deb.feed(self.pin.value(), hw.ticks_ms())
            if level is not None and level != self.last_sent:
                self.last_sent = level
                self.emit("door", val(level))
            await asyncio.sleep_ms(10)
