# What survives a reset: the boot counter and the failed-boot counter on flash,
# and, across deep sleep (ESP32), the boot, seq and last door state in RTC memory,
# so a battery node does not write flash at every wake.
import json

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
        """Decide the boot number. A deep-sleep wake continues the previous boot (same
        ``boot``, ``seq`` continuing, from RTC memory); any other reset is a new boot,
        persisted before anything is sent (DESIGN.md §3: boot increments at every boot)."""
        cause = hw.reset_cause()
        rtc = None
        if cause == "deepsleep":
            try:
                rtc = json.loads(hw.rtc_memory() or b"null")
            except ValueError:
                rtc = None
        if isinstance(rtc, dict) and rtc.get("boot"):
            self.boot = rtc["boot"]
            self.seq = rtc.get("seq", 0)
            self.tq = min(rtc.get("tq", 0), 1)  # the RTC ran on; NTP is not fresh
            self.door = rtc.get("door", -1)
            self.woke = True
            self.failed_boots = 0
            return
        self.boot = util.read_int(BOOT_FILE, 0) + 1
        util.write_atomic(BOOT_FILE, str(self.boot))
        # Counted now, cleared once the node has run healthily (mark_healthy). A power-on
        # is not the firmware's failure (flaky mains must never lead to safe mode); a
        # watchdog, crash or reset without a healthy run in between is.
        self.failed_boots = 0 if cause == "power" else util.read_int(FAIL_FILE, 0)
        util.write_atomic(FAIL_FILE, str(self.failed_boots + 1))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def mark_healthy(self) -> None:
        if util.read_int(FAIL_FILE, 0) != 0:
            util.write_atomic(FAIL_FILE, "0")

    def save_rtc(self) -> None:
        hw.rtc_memory_write(json.dumps(
            {"boot": self.boot, "seq": self.seq, "tq": self.tq, "door": self.door}).encode())
