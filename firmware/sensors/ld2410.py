# HLK-LD2410 24 GHz mmWave presence radar on a UART (256000 baud, 8N1). It streams
# report frames:
#   F4 F3 F2 F1 | len (2, LE) | type (0x02 basic, 0x01 engineering) AA | state |
#   moving dist (2) | moving energy | still dist (2) | still energy | detect dist (2) |
#   [engineering data] | 55 00 | F8 F7 F6 F5
# state: 0 nobody, 1 moving, 2 still, 3 moving and still. The parser resyncs on the
# header after any corrupt frame (counted). ``presence`` is reported on change:
# "moving", "still" or "none" (the last only after ``absent_s`` without a target,
# so a resident sitting very still is not reported gone at once).
import asyncio
import struct
import time

import hw
import hwx

HEAD = b"\xf4\xf3\xf2\xf1"
TAIL = b"\xf8\xf7\xf6\xf5"
MAX_LEN = 64


class Frame:
    __slots__ = ("state", "move_cm", "move_energy", "still_cm", "still_energy", "detect_cm")

    def __init__(self, data) -> None:
        self.state = data[2]
        self.move_cm, self.move_energy, self.still_cm, self.still_energy, self.detect_cm = \
            struct.unpack("<HBHBH", data[3:11])


class Parser:
    def __init__(self) -> None:
        self.buf = bytearray()
        self.bad = 0
        self.good = 0

    def feed(self, data) -> list:
        """Frames completed by ``data`` (bytes from the UART, any chunking)."""
        self.buf.extend(data)
        out = []
        buf = self.buf
        while True:
            i = buf.find(HEAD)
            if i < 0:
                # keep a possible partial header at the end
                keep = 3 if len(buf) >= 3 else len(buf)
                self.buf = buf = buf[len(buf) - keep:]
                break
            if i:
                buf = buf[i:]
            if len(buf) < 6:
                break
            n = buf[4] | (buf[5] << 8)
            if n < 13 or n > MAX_LEN:
                self.bad += 1
                buf = buf[4:]  # not a report frame (or garbage): resync
                continue
            total = 6 + n + 4
            if len(buf) < total:
                break
            data = buf[6:6 + n]
            if (buf[6 + n:total] != TAIL or data[1] != 0xAA or data[n - 2] != 0x55
                    or data[0] not in (1, 2) or data[2] > 3):
                self.bad += 1
                buf = buf[4:]
                continue
            out.append(Frame(data))
            self.good += 1
            buf = buf[total:]
        self.buf = bytearray(buf)
        return out


def state_val(state: int) -> str:
    if state & 1:
        return "moving"
    if state & 2:
        return "still"
    return "none"


class PresenceLogic:
    def __init__(self, absent_ms: int) -> None:
        self.absent_ms = absent_ms
        self.reported: str | None = None
        self._none_since: int | None = None

    def feed(self, state: int, now: int):
        """The new presence value to report, or None."""
        v = state_val(state)
        if v == "none":
            if self._none_since is None:
                self._none_since = now
            return self.poll(now)
        self._none_since = None
        if v != self.reported:
            self.reported = v
            return v
        return None

    def poll(self, now: int):
        """"none" once nobody was seen for ``absent_ms`` (frames or not)."""
        if (self._none_since is not None and self.reported != "none"
                and time.ticks_diff(now, self._none_since) >= self.absent_ms):
            self.reported = "none"
            return "none"
        return None


class Driver:
    name = "ld2410"

    def __init__(self, opts: dict, emit) -> None:
        self.emit = emit
        self.uart = hwx.uart(opts.get("uart", 1), opts["tx"], opts["rx"],
                            opts.get("baud", 256000))
        self.parser = Parser()
        self.logic = PresenceLogic(opts.get("absent_s", 10) * 1000)
        self.wake_low: list = []
        self.wake_high: list = []

    async def run(self) -> None:
        while True:
            n = self.uart.any()
            if n:
                data = self.uart.read(min(n, 256))
                if data:
                    for f in self.parser.feed(data):
                        v = self.logic.feed(f.state, hw.ticks_ms())
                        if v is not None:
                            self.emit("presence", v)
            v = self.logic.poll(hw.ticks_ms())
            if v is not None:
                self.emit("presence", v)
            await asyncio.sleep_ms(50)
