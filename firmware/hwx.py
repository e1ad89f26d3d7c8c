# Hardware extras: what only some drivers (ADC, UART, I2C, DHT), the config (the
# default device id) or a battery node's deep sleep need. Kept out of hw.py, which every
# node loads: a module's functions stay on the heap as long as it is imported, and a
# node with a button, a door and a PIR uses none of these.
import machine

from hw import ESP32, RP2, PinIn

BOARD = "rp2" if RP2 else "esp32"


class Adc:
    """Voltage at a pin in millivolts (before any external divider)."""

    def __init__(self, n: int) -> None:
        if RP2:
            self._adc = machine.ADC(n)
        else:
            self._adc = machine.ADC(machine.Pin(n), atten=machine.ADC.ATTN_11DB)

    def read_mv(self) -> int:
        if RP2:
            return self._adc.read_u16() * 3300 // 65535
        # read_uv (factory-calibrated) exists on the ESP32 port only
        return getattr(self._adc, "read_uv")() // 1000


def uart(n: int, tx: int, rx: int, baud: int):
    return machine.UART(n, baudrate=baud, tx=machine.Pin(tx), rx=machine.Pin(rx), rxbuf=512)


def i2c(n: int, scl: int, sda: int, freq: int = 100000):
    return machine.I2C(n, scl=machine.Pin(scl), sda=machine.Pin(sda), freq=freq)


def dht_readinto(pin: PinIn, buf: bytearray) -> None:
    """The 40-bit DHT read, timed in C by the port; raises OSError on no answer."""
    f = getattr(machine, "dht_readinto", None)
    if f is None:
        f = getattr(__import__("esp" if ESP32 else "rp2"), "dht_readinto")
    f(pin.raw, buf)


def unique_id() -> bytes:
    return machine.unique_id()


def default_device_id() -> str:
    """``<board>-<last 3 bytes of the chip id>``, e.g. ``esp32-a1b2c3`` (DESIGN.md §3)."""
    uid = unique_id()
    return BOARD + "-" + "".join("%02x" % b for b in uid[-3:])


def deepsleep(ms: int, wake_low: list, wake_high: list) -> None:
    """Deep sleep; wake on timer, on any pin in ``wake_low`` going low (ext0: one pin)
    or any pin in ``wake_high`` going high (ext1). The board resets on wake."""
    if ESP32:
        esp32 = __import__("esp32")
        if wake_low:
            esp32.wake_on_ext0(machine.Pin(wake_low[0]), esp32.WAKEUP_ALL_LOW)
        if wake_high:
            esp32.wake_on_ext1([machine.Pin(n) for n in wake_high], esp32.WAKEUP_ANY_HIGH)
        machine.deepsleep(ms)
    else:
        # Pico W: no pin wake from deep sleep in MicroPython; light sleep keeps RAM
        # (a reset afterwards starts a new boot, which is correct).
        machine.lightsleep(ms)
        machine.reset()
