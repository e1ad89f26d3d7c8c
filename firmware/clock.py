# Device time for the envelope: ``ts`` in ms UTC and ``tq`` (DESIGN.md §3:
# 0 unsynced, 1 RTC, 2 NTP). NTP is a small non-blocking SNTP client on asyncio,
# so a slow or absent time server never stalls the sensors.
import asyncio
import socket
import struct
import time

import hw

# The ESP32 port counts from 2000-01-01, the unix and rp2 ports from 1970.
EPOCH_OFFSET = 946684800 if time.gmtime(0)[0] == 2000 else 0
NTP_DELTA = 2208988800  # 1900 -> 1970
SANE_UNIX_S = 1735689600  # 2025-01-01: an RTC earlier than this was never set

TQ_NONE = 0
TQ_RTC = 1
TQ_NTP = 2


class Clock:
    def __init__(self, tq: int = TQ_NONE) -> None:
        self.tq = tq
        if tq == TQ_NONE and self.unix_s() > SANE_UNIX_S:
            self.tq = TQ_RTC  # kept by the RTC across a reset or deep sleep

    def unix_s(self) -> int:
        return time.time() + EPOCH_OFFSET

    def now_ms(self) -> int:
        return time.time_ns() // 1000000 + EPOCH_OFFSET * 1000

    async def sync(self, host: str, port: int = 123, timeout_ms: int = 2000) -> bool:
        """One SNTP exchange; sets the RTC and ``tq`` = 2 on success."""
        s = None
        try:
            addr = socket.getaddrinfo(host, port, 0, socket.SOCK_DGRAM)[0][-1]
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setblocking(False)
            q = bytearray(48)
            q[0] = 0x1B  # LI 0, version 3, mode 3 (client)
            s.sendto(q, addr)
            t0 = hw.ticks_ms()
            while hw.ticks_diff(hw.ticks_ms(), t0) < timeout_ms:
                try:
                    data = s.recv(48)
                except OSError:
                    await asyncio.sleep_ms(20)
                    continue
                if len(data) < 48 or (data[0] & 0x07) != 4:
                    continue  # not a server reply
                secs, frac = struct.unpack("!II", data[40:48])
                if secs == 0:
                    return False
                unix = secs - NTP_DELTA
                if unix < SANE_UNIX_S:
                    return False
                if not hw.SIM:
                    hw.set_rtc(unix, EPOCH_OFFSET)
                self.tq = TQ_NTP
                return True
            return False
        except OSError:
            return False
        finally:
            if s is not None:
                s.close()
