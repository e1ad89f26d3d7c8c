# What survives a reset: the boot counter and the failed-boot counter on flash,
# and, across deep sleep (ESP32), the boot, seq and last door state in RTC memory,
# so a battery node does not write flash at every wake.
import json
import sys

import hw
import util

BOOT_FILE = "boot.txt"
FAIL_FILE = "bootfail.txt"


class State:
    def __init__(self) -> None:
        self.boot = 0
        self.seq = 0
        self.tq = 0  # time quality kept across deep sleep
        self.door = -1  # last reported door level, -1 unknown
        self.woke = False  # this boot is a wake from deep sleep (same boot number)
        self.failed_boots = 0

    def start(self) -> None:
        """Decide the boot number (bootstate.py: boot-only code, loaded for this and
        dropped after)."""
        import bootstate

        try:
            bootstate.start(self)
        finally:
            del sys.modules["bootstate"]

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def mark_healthy(self) -> None:
        if util.read_int(FAIL_FILE, 0) != 0:
            util.write_atomic(FAIL_FILE, "0")

    def save_rtc(self) -> None:
        hw.rtc_memory_write(json.dumps(
            {"boot": self.boot, "seq": self.seq, "tq": self.tq, "door": self.door}).encode())
