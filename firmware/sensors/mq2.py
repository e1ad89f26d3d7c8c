# MQ-2 gas sensor module, digital output (DO): pulled LOW when the gas level passes
# the module's potentiometer threshold. The heater needs a warm-up during which DO
# is meaningless; after it, ``gas`` is raised once per confirmed alarm.
import asyncio
import time

import hw
from sensors.debounce import AlarmInput


class Driver:
    name = "mq2"

    def __init__(self, opts: dict, emit) -> None:
        self.emit = emit
        self.pin = hw.PinIn(opts["pin"], pull_up=True)
        self.active_low = opts.get("active_low", True)
        now = hw.ticks_ms()
        self.ready_at = time.ticks_add(now, opts.get("warmup_s", 120) * 1000)
        self.alarm = AlarmInput(opts.get("confirm_ms", 2000), opts.get("clear_s", 30) * 1000,
                                now)
        self.wake_low: list = []
        self.wake_high: list = []

    async def run(self) -> None:
        while True:
            now = hw.ticks_ms()
            if time.ticks_diff(now, self.ready_at) >= 0:
                active = (self.pin.value() == 0) == self.active_low
                if self.alarm.feed(active, now):
                    self.emit("gas", "detected")
            await asyncio.sleep_ms(100)
