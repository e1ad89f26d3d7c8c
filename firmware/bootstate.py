# The boot number, decided once at boot (store.State.start): a deep-sleep wake goes on
# with the boot in RTC memory, any other reset starts a new one. Boot-only code, loaded
# for it and dropped after (a loaded module's code stays on the heap).
import json

import machine

import util
from hw import ESP32
from store import BOOT_FILE, FAIL_FILE

_CAUSES = (("DEEPSLEEP_RESET", "deepsleep"), ("WDT_RESET", "wdt"), ("PWRON_RESET", "power"),
           ("SOFT_RESET", "soft"))


def reset_cause() -> str:
    """deepsleep | wdt | power | soft | hard. The rp2 port defines only PWRON_RESET and
    WDT_RESET, hence the lookups by name."""
    c = machine.reset_cause()
    for name, label in _CAUSES:
        if c == getattr(machine, name, None):
            return label
    return "hard"


def rtc_memory() -> bytes:
    if not ESP32:
        return b""  # the RP2040 keeps nothing across its (light) sleep resets
    return bytes(machine.RTC().memory())


def start(st) -> None:
    """Decide the boot number. A deep-sleep wake continues the previous boot (same
    ``boot``, ``seq`` continuing, from RTC memory); any other reset is a new boot,
    persisted before anything is sent (DESIGN.md §3: boot increments at every boot)."""
    cause = reset_cause()
    rtc = None
    if cause == "deepsleep":
        try:
            rtc = json.loads(rtc_memory() or b"null")
        except ValueError:
            rtc = None
    if isinstance(rtc, dict) and rtc.get("boot"):
        st.boot = rtc["boot"]
        st.seq = rtc.get("seq", 0)
        st.tq = min(rtc.get("tq", 0), 1)  # the RTC ran on; NTP is not fresh
        st.door = rtc.get("door", -1)
        st.woke = True
        st.failed_boots = 0
        return
    st.boot = util.read_int(BOOT_FILE, 0) + 1
    util.write_atomic(BOOT_FILE, str(st.boot))
    # Counted now, cleared once the node has run healthily (mark_healthy). A power-on
    # is not the firmware's failure (flaky mains must never lead to safe mode); a
    # watchdog, crash or reset without a healthy run in between is.
    st.failed_boots = 0 if cause == "power" else util.read_int(FAIL_FILE, 0)
    util.write_atomic(FAIL_FILE, str(st.failed_boots + 1))
