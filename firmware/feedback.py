# What the resident sees and hears. After a life-safety press the LED blinks fast
# ("sending"); when the care centre has journalled it (the ack), the LED stays on
# for 10 s and the buzzer beeps twice ("help has been notified"). ``identify``
# blinks slowly so an installer can find the device.
import asyncio

import hw
import util

IDLE = 0
SENDING = 1
NOTIFIED = 2
IDENTIFY = 3


def _out(opts):
    if not opts:
        return None
    return hw.PinOut(opts["pin"], opts.get("active_low", False))


class Feedback:
    def __init__(self, led_opts, buzzer_opts) -> None:
        self.led = _out(led_opts)
        self.buzzer = _out(buzzer_opts)
        self.mode = IDLE
        self._until = 0
        self._wake = asyncio.Event()

    def _set(self, mode: int, ms: int) -> None:
        self.mode = mode
        self._until = hw.ticks_add(hw.ticks_ms(), ms)
        self._wake.set()

    def sending(self) -> None:
        if self.mode != SENDING:
            util.log("feedback sending")
        self._set(SENDING, 0)

    def notified(self) -> None:
        util.log("feedback notified")
        self._set(NOTIFIED, 10000)

    def identify(self, seconds: int) -> None:
        util.log("feedback identify", seconds)
        if self.mode != SENDING:  # an alarm in progress is never hidden
            self._set(IDENTIFY, seconds * 1000)

    def _led(self, on: bool) -> None:
        if self.led is not None:
            self.led.set(on)

    def _buzz(self, on: bool) -> None:
        if self.buzzer is not None:
            self.buzzer.set(on)

    async def run(self) -> None:
        while True:
            mode = self.mode
            if mode == SENDING:
                self._led(True)
                await asyncio.sleep_ms(125)
                self._led(False)
                await asyncio.sleep_ms(125)
            elif mode == NOTIFIED:
                self._led(True)
                for _ in range(2):
                    self._buzz(True)
                    await asyncio.sleep_ms(150)
                    self._buzz(False)
                    await asyncio.sleep_ms(150)
                while self.mode == NOTIFIED and hw.ticks_diff(self._until, hw.ticks_ms()) > 0:
                    await asyncio.sleep_ms(100)
                if self.mode == NOTIFIED:
                    self.mode = IDLE
                self._led(False)
            elif mode == IDENTIFY:
                self._led(True)
                await asyncio.sleep_ms(500)
                self._led(False)
                await asyncio.sleep_ms(500)
                if self.mode == IDENTIFY and hw.ticks_diff(self._until, hw.ticks_ms()) <= 0:
                    self.mode = IDLE
            else:
                self._wake.clear()
                try:
                    await asyncio.wait_for_ms(self._wake.wait(), 1000)
                except asyncio.TimeoutError:
                    pass
