# Hardware layer: with hwx.py and bootstate.py (the reset cause and RTC memory, read
# once at boot), the only modules that touch machine/network/esp32.
#
# Drivers and the node use these small wrappers, so the same firmware runs on an
# ESP32, on a Pico W, and under the MicroPython unix port in tests, where
# tests/firmware/mpy/simhw.py stands in for machine/network/esp32 (installed in
# sys.modules before this module is imported). Board differences live here only.
# What only some drivers, the config or deep sleep need is in hwx.py, imported by its
# users alone: a loaded module's functions stay on the heap, and the node's is small.
import sys
import time

import machine
import network

SIM = sys.platform not in ("esp32", "rp2")
# The simulated board behaves like an ESP32 (deep sleep, RTC memory, ext wake).
ESP32 = sys.platform == "esp32" or SIM
RP2 = sys.platform == "rp2"

RISING = 1
FALLING = 2

_UNSET = -1


# ticks are opaque (they wrap): compare them only with ticks_diff.
def ticks_ms():
    return time.ticks_ms()


def ticks_diff(a, b) -> int:
    return time.ticks_diff(a, b)


def ticks_add(a, b):
    return time.ticks_add(a, b)


class PinIn:
    """A digital input with an optional edge callback (soft IRQ on the boards)."""

    def __init__(self, n: int, pull_up: bool = True) -> None:
        self.n = n
        pull = machine.Pin.PULL_UP if pull_up else machine.Pin.PULL_DOWN
        self._pin = machine.Pin(n, machine.Pin.IN, pull)

    def value(self) -> int:
        return self._pin.value()

    def on_edge(self, handler, rising: bool = True, falling: bool = True) -> None:
        trig = 0
        if rising:
            trig |= machine.Pin.IRQ_RISING
        if falling:
            trig |= machine.Pin.IRQ_FALLING
        # Soft IRQ: the handler may allocate; it only records the edge.
        self._pin.irq(handler=handler, trigger=trig)

    @property
    def raw(self):
        return self._pin


class PinOut:
    def __init__(self, n: int, active_low: bool = False) -> None:
        self.n = n
        self._inv = active_low
        self._pin = machine.Pin(n, machine.Pin.OUT)
        self.set(False)

    def set(self, on: bool) -> None:
        self._pin.value(1 if on != self._inv else 0)


class Watchdog:
    def __init__(self, timeout_ms: int) -> None:
        if RP2:
            timeout_ms = min(timeout_ms, 8000)  # the RP2040 watchdog tops out at 8.3 s
        self._wdt = machine.WDT(timeout=timeout_ms)

    def feed(self) -> None:
        self._wdt.feed()


def rtc_memory_write(data: bytes) -> None:
    if ESP32:
        machine.RTC().memory(data)


def set_rtc(unix_s: int, epoch_offset: int) -> None:
    """Set the RTC from Unix seconds; the port's epoch may be 2000 (ESP32)."""
    t = time.gmtime(unix_s - epoch_offset)
    # RTC.datetime wants (year, month, day, weekday, hours, minutes, seconds, subseconds)
    machine.RTC().datetime((t[0], t[1], t[2], t[6], t[3], t[4], t[5], 0))


def reset() -> None:
    machine.reset()


class Wifi:
    """Station interface: connect without blocking, report state and RSSI."""

    def __init__(self) -> None:
        self._sta = network.WLAN(network.STA_IF)

    def start(self, ssid: str, password: str) -> None:
        sta = self._sta
        sta.active(True)
        if RP2:
            # CYW43 power save drops packets under MQTT keepalive (Pico W datasheet 3.6.3).
            sta.config(pm=0xA11140)
        sta.connect(ssid, password)

    def isconnected(self) -> bool:
        return self._sta.isconnected()

    def failed(self) -> bool:
        """True when the driver has given up (wrong password, no AP): retry later."""
        s = self._sta.status()
        return (s < network.STAT_IDLE) if ESP32 else (s < 0)

    def rssi(self) -> int | None:
        try:
            return self._sta.status("rssi")
        except Exception:  # not associated
            return None

    def stop(self) -> None:
        try:
            self._sta.disconnect()
        except OSError:
            pass
