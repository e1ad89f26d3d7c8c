# Sensirion SHT31 temperature and humidity on I2C (address 0x44, or 0x45 with ADDR
# high). Single-shot, high repeatability, no clock stretching; each 16-bit word is
# followed by its CRC-8 (poly 0x31, init 0xFF) which is checked here.
import asyncio

import hwx

CMD_MEASURE = b"\x24\x00"


def crc8(data) -> int:
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def decode(buf) -> tuple:
    """(temperature_c, humidity_pct) from the 6 bytes; raises ValueError on a bad CRC."""
    if len(buf) != 6:
        raise ValueError("need 6 bytes")
    if crc8(buf[0:2]) != buf[2] or crc8(buf[3:5]) != buf[5]:
        raise ValueError("crc")
    raw_t = (buf[0] << 8) | buf[1]
    raw_h = (buf[3] << 8) | buf[4]
    t = -45 + 175 * raw_t / 65535
    h = 100 * raw_h / 65535
    return round(t, 2), round(min(100.0, max(0.0, h)), 2)


class Driver:
    name = "sht31"

    def __init__(self, opts: dict, emit) -> None:
        self.bus = hwx.i2c(opts.get("i2c", 0), opts["scl"], opts["sda"])
        self.addr = opts.get("addr", 0x44)
        self.errors = 0
        self.wake_low: list = []
        self.wake_high: list = []

    async def sample(self):
        try:
            self.bus.writeto(self.addr, CMD_MEASURE)
            await asyncio.sleep_ms(16)  # high repeatability: 15.5 ms max
            return decode(self.bus.readfrom(self.addr, 6))
        except (OSError, ValueError):
            self.errors += 1
            return None

    async def read(self, readings: dict) -> None:
        v = await self.sample()
        readings["temperature_c"] = None if v is None else v[0]
        readings["humidity_pct"] = None if v is None else v[1]
