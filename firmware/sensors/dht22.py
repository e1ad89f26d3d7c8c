# DHT22 / AM2302 temperature and humidity (one-wire-like, 40 bits). The port's C code
# times the bits into a 5-byte buffer; decoding and the checksum are here, so a
# corrupted read is caught and reported as a missing reading (null), never a
# wrong temperature. At most one read per 2 s (the sensor's limit).
import time

import hw
import hwx


class ChecksumError(ValueError):
    pass


def decode(buf) -> tuple:
    """(temperature_c, humidity_pct) from the 5 raw bytes; raises ValueError."""
    if len(buf) != 5:
        raise ValueError("need 5 bytes")
    if (buf[0] + buf[1] + buf[2] + buf[3]) & 0xFF != buf[4]:
        raise ChecksumError("checksum")
    hum = ((buf[0] << 8) | buf[1]) / 10
    t = (((buf[2] & 0x7F) << 8) | buf[3]) / 10
    if buf[2] & 0x80:
        t = -t
    if not (0 <= hum <= 100 and -40 <= t <= 80):
        raise ValueError("out of range")
    return t, hum


class Driver:
    name = "dht22"

    def __init__(self, opts: dict, emit) -> None:
        self.pin = hw.PinIn(opts["pin"], pull_up=True)
        self.buf = bytearray(5)
        self.errors = 0
        self._last: int | None = None
        self._value: tuple | None = None
        self.wake_low: list = []
        self.wake_high: list = []

    def sample(self):
        now = hw.ticks_ms()
        if self._last is not None and time.ticks_diff(now, self._last) < 2000:
            return self._value
        self._last = now
        try:
            hwx.dht_readinto(self.pin, self.buf)
            self._value = decode(self.buf)
        except (OSError, ValueError):
            self.errors += 1
            self._value = None
        return self._value

    async def read(self, readings: dict) -> None:
        v = self.sample()
        readings["temperature_c"] = None if v is None else v[0]
        readings["humidity_pct"] = None if v is None else v[1]
