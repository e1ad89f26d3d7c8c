# Smoke alarm interconnect input: a mains/battery smoke alarm's interconnect wire
# (about 9 V while sounding) through an optocoupler to this pin. With the opto's
# transistor to GND and the pull-up, 0 = alarm sounding (``active_low`` true).
import asyncio

import hw
from sensors.debounce import AlarmInput


class Driver:
    name = "smoke"

    def __init__(self, opts: dict, emit) -> None:
        self.emit = emit
        self.pin = hw.PinIn(opts["pin"], pull_up=True)
        self.active_low = opts.get("active_low", True)
        self.alarm = AlarmInput(opts.get("confirm_ms", 1000), opts.get("clear_s", 30) * 1000,
                                hw.ticks_ms())
        self.wake_low: list = []
        self.wake_high: list = []

    async def run(self) -> None:
        while True:
            active = (self.pin.value() == 0) == self.active_low
            if self.alarm.feed(active, hw.ticks_ms()):
                self.emit("smoke", "alarm")
            await asyncio.sleep_ms(50)
