"""Sensor drivers and the node's pure cores, executed by the real MicroPython unix port
(``mpy/evaluate.py``); inputs and expected outputs are the tables here. Time is passed
in as ``now`` (ticks_ms): nothing sleeps."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dolbom.fwtool.bundle import default_source
from dolbom.mqtt import packets
from tests.firmware.simnode import MPY_DIR, micropython

FIRMWARE = default_source()


def mpy(tmp_path: Path, req: dict[str, Any], reset: str = "power") -> Any:
    env = dict(os.environ, DOLBOM_SIM_RESET=reset)
    r = subprocess.run([micropython(), str(MPY_DIR / "evaluate.py"), str(FIRMWARE)],
                       input=json.dumps(req), capture_output=True, text=True, timeout=30,
                       cwd=tmp_path, env=env, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- debouncing
@pytest.mark.parametrize(("feed", "expected"), [
    # a clean press held past 50 ms is reported once, when it settled
    ([[0, 0], [0, 20], [0, 50], [0, 80]], [None, None, 0, None]),
    # contact bounce (0/1 chatter) within the window: nothing until it holds
    ([[0, 0], [1, 5], [0, 10], [1, 15], [0, 20], [0, 60], [0, 75]],
     [None, None, None, None, None, None, 0]),
    # a 30 ms glitch never becomes an event
    ([[0, 0], [0, 30], [1, 31], [1, 100]], [None, None, None, None]),
])
@pytest.mark.parametrize("before_wrap", [0, 25])
def test_debouncer_reports_only_settled_levels(tmp_path: Path, feed: list[list[int]],
                                               expected: list[int | None],
                                               before_wrap: int) -> None:
    """Door/button contacts: bounce and glitches shorter than 50 ms are never reported,
    also when ticks_ms wraps around in the middle of a press."""
    assert mpy(tmp_path, {"kind": "debounce", "ms": 50, "level": 1, "t0": feed[0][1],
                          "feed": feed, "before_wrap": before_wrap}) == expected


def test_button_press_reported_at_once_and_long_press_once(tmp_path: Path) -> None:
    """The alarm button: "press" after 30 ms of debounce, "long" once after 3 s held."""
    feed = [[1, 0], [0, 100], [0, 135], [0, 1000], [0, 3140], [0, 5000], [1, 5100],
            [1, 5200], [0, 6000], [0, 6040], [1, 6100], [1, 6200]]
    out = mpy(tmp_path, {"kind": "button", "debounce_ms": 30, "long_ms": 3000, "feed": feed})
    assert out == [None, None, "press", None, "long", None, None, None, None, "press",
                   None, None]


@pytest.mark.parametrize(("feed", "presses"), [
    # the loop stalled through a whole 50 ms press: only the interrupt saw it
    ([[1, 0], [1, 10], ["edge", 15], [1, 70], [1, 75], [1, 100]],
     [None, None, None, None, "press", None]),
    # the same press, polled normally: reported once, by the debouncer
    ([[1, 0], ["edge", 10], [0, 10], [0, 45], [0, 60], [1, 100], [1, 140], [1, 300]],
     [None, None, None, "press", None, None, None, None]),
    # bounce when pressing (the pin reads high again for a moment): still one press
    ([[1, 0], ["edge", 5], [1, 6], [0, 10], [0, 45], [0, 100], [1, 200], [1, 240],
      [1, 400]], [None, None, None, None, "press", None, None, None, None]),
    # bounce when releasing: falling edges after the release are not presses
    ([[0, 0], [0, 40], [1, 100], ["edge", 105], [1, 110], [1, 140], ["edge", 150],
      [1, 200], [1, 400]], [None, "press", None, None, None, None, None, None, None]),
])
def test_button_interrupt_catches_a_press_the_poll_missed(tmp_path: Path,
                                                          feed: list[list[Any]],
                                                          presses: list[str | None]) -> None:
    """A press shorter than a stalled event loop is still reported (from its interrupt),
    and an interrupt never doubles a polled press or turns contact bounce into a press."""
    out = mpy(tmp_path, {"kind": "button", "debounce_ms": 30, "long_ms": 3000, "feed": feed})
    assert out == presses


def test_pir_hold_off_limits_motion_reports(tmp_path: Path) -> None:
    """PIR: one `motion` per 30 s hold-off however often the sensor fires."""
    times = [0, 1000, 29_999, 30_000, 45_000, 61_000, 91_000]
    assert mpy(tmp_path, {"kind": "holdoff", "ms": 30_000, "times": times}) == \
        [True, False, False, True, False, True, True]


def test_gas_and_smoke_alarm_needs_confirmation_and_rearms(tmp_path: Path) -> None:
    """MQ-2 / smoke line: a flicker raises nothing; 2 s continuous raises once; it re-arms
    only after 30 s clear."""
    feed = [[1, 0], [0, 500], [1, 1000], [1, 2500], [1, 3000], [1, 3500], [0, 4000],
            [1, 10_000], [1, 12_500], [0, 13_000], [0, 43_000], [1, 44_000], [1, 46_000]]
    out = mpy(tmp_path, {"kind": "alarm", "confirm_ms": 2000, "clear_ms": 30_000, "t0": 0,
                         "feed": feed})
    assert out == [False, False, False, False, True, False, False, False, False, False,
                   False, False, True]


# ---------------------------------------------------------------- DHT22 / SHT31
def _dht(hum10: int, temp10: int, corrupt: bool = False) -> str:
    t = abs(temp10) | (0x8000 if temp10 < 0 else 0)
    b = [hum10 >> 8, hum10 & 0xFF, t >> 8, t & 0xFF]
    b.append((sum(b) + (1 if corrupt else 0)) & 0xFF)
    return bytes(b).hex()


@pytest.mark.parametrize(("raw", "expected"), [
    (_dht(452, 215), [21.5, 45.2]),
    (_dht(999, -101), [-10.1, 99.9]),
    (_dht(452, 215, corrupt=True), {"error": "ChecksumError", "msg": "checksum"}),
    ("0000000000", [0.0, 0.0]),
    (_dht(1200, 215), {"error": "ValueError", "msg": "out of range"}),
    ("01c200d7", {"error": "ValueError", "msg": "need 5 bytes"}),
])
def test_dht22_decoding_and_checksum(tmp_path: Path, raw: str, expected: Any) -> None:
    """DHT22: values decoded (negative temperatures too); a bad checksum or an impossible
    value is an error (reported as a null reading), never a wrong temperature."""
    assert mpy(tmp_path, {"kind": "dht22", "hex": raw}) == expected


def _crc8(data: bytes) -> int:
    crc = 0xFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = ((crc << 1) ^ 0x31) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc


def _sht(t_raw: int, h_raw: int, bad_crc: bool = False) -> str:
    t = t_raw.to_bytes(2, "big")
    h = h_raw.to_bytes(2, "big")
    return (t + bytes([_crc8(t) ^ (1 if bad_crc else 0)]) + h + bytes([_crc8(h)])).hex()


def test_sht31_crc_matches_the_datasheet_example(tmp_path: Path) -> None:
    """Sensirion's datasheet: CRC-8 of 0xBEEF is 0x92."""
    assert mpy(tmp_path, {"kind": "crc8", "hex": "beef"}) == 0x92


@pytest.mark.parametrize(("raw", "expected"), [
    (_sht(0x6666, 0x8000), [25.0, 50.0]),
    (_sht(0, 0xFFFF), [-45.0, 100.0]),
    (_sht(0x6666, 0x8000, bad_crc=True), {"error": "ValueError", "msg": "crc"}),
])
def test_sht31_decoding_and_crc_errors(tmp_path: Path, raw: str, expected: Any) -> None:
    """SHT31: raw words to °C / %RH; a corrupted word is rejected by its CRC."""
    assert mpy(tmp_path, {"kind": "sht31", "hex": raw}) == expected


# ---------------------------------------------------------------- LD2410
# Report frames as given in the HLK-LD2410 serial protocol document's examples:
# a basic-mode frame (target still) and an engineering-mode frame (moving and still).
BASIC = "f4f3f2f10d0002aa0251000000003b00005500f8f7f6f5"
ENGINEERING = ("f4f3f2f1230001aa031e003c000039000008083c22050303040306050000391013060608"
               "0403055500f8f7f6f5")
NOBODY = "f4f3f2f1" "0d00" "02aa00" + "00" * 8 + "5500" "f8f7f6f5"


def test_ld2410_frames_parsed_in_any_chunking(tmp_path: Path) -> None:
    """Basic and engineering frames, split across UART reads at every byte, parse the same."""
    stream = bytes.fromhex(BASIC + ENGINEERING + NOBODY)
    for size in (1, 3, 7, len(stream)):
        chunks = [stream[i:i + size].hex() for i in range(0, len(stream), size)]
        out = mpy(tmp_path, {"kind": "ld2410", "chunks": chunks})
        assert out["frames"] == [[2, 81, 0, 0, 59, 0], [3, 30, 60, 0, 57, 0],
                                 [0, 0, 0, 0, 0, 0]], size
        assert out["bad"] == 0


@pytest.mark.parametrize(("corrupt", "why"), [
    (BASIC[:-8] + "f8f7f6f4", "wrong tail"),
    (BASIC[:14] + "bb" + BASIC[16:], "no 0xAA marker"),
    ("f4f3f2f1ff00" + "00" * 8, "impossible length"),
    (BASIC[:12] + "07" + BASIC[14:], "unknown frame type"),
    (BASIC[:16] + "09" + BASIC[18:], "target state out of range"),
])
def test_ld2410_corrupt_frames_are_counted_and_skipped(tmp_path: Path, corrupt: str,
                                                       why: str) -> None:
    """Corrupt frames (noise on the UART) are dropped and counted; the parser resyncs and
    the next good frame is read."""
    out = mpy(tmp_path, {"kind": "ld2410", "chunks": ["00ff" + corrupt, NOBODY]})
    assert out["frames"] == [[0, 0, 0, 0, 0, 0]], why
    assert out["bad"] >= 1, why


def test_ld2410_garbage_does_not_grow_the_buffer(tmp_path: Path) -> None:
    """A UART full of noise keeps at most a partial header buffered (bounded memory)."""
    out = mpy(tmp_path, {"kind": "ld2410", "chunks": ["a5" * 500, "f4f3"]})
    assert out["frames"] == [] and out["buffered"] <= 5


def test_presence_reports_changes_and_absence_after_a_while(tmp_path: Path) -> None:
    """`presence`: moving/still reported on change; "none" only after 10 s without target."""
    feed = [[1, 0], [1, 100], [2, 200], [0, 300], [None, 5000], [0, 9000], [None, 10_300],
            [None, 11_000], [3, 12_000]]
    out = mpy(tmp_path, {"kind": "presence", "absent_ms": 10_000, "feed": feed})
    assert out == ["moving", None, "still", None, None, None, "none", None, "moving"]


# ---------------------------------------------------------------- battery
def test_battery_curve_and_low_alarm(tmp_path: Path) -> None:
    """Li-ion curve: full at 4.2 V, empty at 3.27 V, linear between points; battery_low
    once below 20 %, re-armed at 25 %."""
    out = mpy(tmp_path, {"kind": "battery", "mv": [4300, 4200, 4000, 3840, 3730, 3720, 3270,
                                                   3000],
                         "low_feed": [50, 19, 15, 22, 19, 25, 19]})
    assert out["pct"] == [100, 100, 77, 50, 20, 17, 0, 0]
    assert out["low"] == [False, True, False, False, False, False, True]


# ---------------------------------------------------------------- outbox / queue
def test_outbox_survives_reload_and_forgets_only_acked(tmp_path: Path) -> None:
    """The flash outbox: events survive a reset; an ack removes exactly one; the file is
    gone once nothing is pending; an unknown ack changes nothing."""
    ops = [["add", 3, 1], ["add", 3, 2], ["add", 3, 5], ["reload"], ["ack", 3, 2],
           ["ack", 9, 9], ["reload"], ["ack", 3, 1], ["ack", 3, 5]]
    out = mpy(tmp_path, {"kind": "outbox", "ops": ops})
    s = out["states"]
    assert s[4] == [[3, 1], [3, 2], [3, 5]]  # after reload
    assert s[5] is True and s[6] == [[3, 1], [3, 5]]
    assert s[7] is False and s[9] == [[3, 1], [3, 5]]  # unknown ack; reload keeps the rest
    assert s[-1] == [] and out["file"] is False


def test_outbox_ignores_a_torn_last_line(tmp_path: Path) -> None:
    """A power cut in the middle of an append leaves a torn line: it is ignored."""
    good = b'+1 4 care/v1/s/d/event/button {"v":1}\n'
    torn = b'+1 5 care/v1/s/d/event/but'
    out = mpy(tmp_path, {"kind": "outbox", "preload": (good + torn).hex(), "ops": []})
    assert out["states"][0] == [[1, 4]]


T0 = 1_700_000_000_000  # device time (ms) of the first press in the outbox tables


def test_outbox_write_errors_and_evictions_are_counted_and_survive_a_reset(
        tmp_path: Path) -> None:
    """A failed flash write and an eviction (a full outbox of four different kinds) are
    counted, persisted and still there after a reset; the event whose write failed is
    written again once the flash works, so it survives the reset too."""
    ops: list[list[Any]] = [
        ["emit", "button", "press", T0, 0], ["emit", "smoke", None, T0 + 1, 1],
        ["fail", True], ["emit", "gas", None, T0 + 2, 2], ["fail", False],
        ["health"], ["tick", 10], ["tick", 30_002],  # the failed write is made again
        ["emit", "fall", None, T0 + 3, 30_003], ["health"], ["reload", 0], ["health"],
        ["state"]]
    out = mpy(tmp_path, {"kind": "outbox_ops", "cap": 3, "ops": ops})
    assert out[5]["werr"] >= 1 and out[5]["depth"] == 3
    werr = out[5]["werr"]
    # the fourth kind: nothing to merge, so the oldest is evicted (counted)
    assert out[9] == {"depth": 3, "evicted": 1, "merged": 0, "werr": werr}
    assert out[11] == out[9]  # the counters survived the reset
    assert [e[1] for e in out[12]] == [2, 3, 4]  # the gas event reached flash late


def test_status_carries_the_outbox_counters(tmp_path: Path) -> None:
    """The node's status has ``"ob"`` (depth, evicted, merged, werr), read back from
    flash after a reset, and dolbom.protocol decodes it into ``Status.outbox``."""
    from dolbom.protocol import OutboxHealth, Status, Topic, decode
    from dolbom.protocol.topics import Kind

    ops: list[list[Any]] = [
        ["emit", "button", "press", T0, 0], ["fail", True],
        ["emit", "smoke", None, T0 + 1, 1], ["fail", False], ["tick", 40_000],
        ["reload", 0]]
    out = mpy(tmp_path, {"kind": "status", "cap": 48, "ops": ops})
    ob = out["status"]["ob"]
    assert ob["depth"] == 2 and ob["werr"] >= 1 and ob["evicted"] == 0 \
        and ob["merged"] == 0
    st = decode(Topic(Kind.STATUS, "s1", "d1"), json.dumps(out["status"]).encode())
    assert isinstance(st, Status) and st.boot == 3
    assert st.outbox == OutboxHealth(depth=2, evicted=0, merged=0, werr=ob["werr"])


@pytest.mark.parametrize("online", [False, True])
def test_chattering_button_writes_flash_a_bounded_number_of_times(
        tmp_path: Path, online: bool) -> None:
    """1,000 presses in an hour, none acked (broker down, or up but the care centre
    silent): every press is counted in a pending event, no seq is spent on a repeat,
    and the flash is written at most 30 times in the hour."""
    ops: list[list[Any]] = [["press", "button", "press", 1000, 0, 3600, 1 if online else 0],
                            ["writes"], ["state"], ["health"]]
    out = mpy(tmp_path, {"kind": "outbox_ops", "ops": ops})
    writes, state, health = out[1], out[2], out[3]
    print(f"\nchattering button, {'online' if online else 'offline'}: {writes} flash "
          f"writes for 1000 presses in 1 h, {len(state)} pending event(s)")
    assert writes <= 30
    assert sum(e[2].get("n", 1) for e in state) == 1000  # nothing lost, all counted
    assert [e[1] for e in state] == list(range(1, len(state) + 1))  # seqs without gaps
    assert state[0][2]["ts"] == T0 and health["evicted"] == health["merged"] == 0
    if online:
        assert len(state) <= 8  # one new event per HOLD_MS at most
    else:
        assert len(state) == 1 and state[0][2]["last"] == T0 + 999 * 3600


def test_a_sent_event_keeps_its_bytes_and_a_repeat_waits_for_its_ack(
        tmp_path: Path) -> None:
    """Once sent, an event is re-sent with the same (boot, seq) and bytes until acked; a
    repeat becomes a new event (new seq) that collects further repeats and goes out
    when the first is acked; after a reset the counts read back are those sent."""
    ops: list[list[Any]] = [
        ["emit", "button", "press", T0, 0], ["emit", "button", "press", T0 + 5, 5],
        ["due", 10, 1],  # sent with n 2
        ["emit", "button", "press", T0 + 20, 20], ["emit", "button", "press", T0 + 30, 30],
        ["due", 40_000, 1],  # the first again (not acked), the repeat held back
        ["ack", 1, 1], ["due", 40_010, 1], ["reload", 50_000], ["due", 50_010, 2]]
    out = mpy(tmp_path, {"kind": "outbox_ops", "ops": ops})
    first = [1, 1, {"v": 1, "boot": 1, "seq": 1, "ts": T0, "tq": 2, "val": "press", "n": 2,
                    "last": T0 + 5}]
    assert out[2] == [first] and out[5] == [first]
    assert out[3] == [1, 2, 1] and out[4] == [1, 2, 2]
    second = [1, 2, {"v": 1, "boot": 1, "seq": 2, "ts": T0 + 20, "tq": 2, "val": "press",
                     "n": 2, "last": T0 + 30}]
    assert out[7] == [second] and out[9] == [second]  # the same bytes after the reset


def test_a_repeat_is_not_held_back_forever(tmp_path: Path) -> None:
    """A repeat waiting for its predecessor's ack goes out after HOLD_MS (10 min) even
    if that ack never comes; another kind is never held back."""
    ops: list[list[Any]] = [
        ["emit", "button", "press", T0, 0], ["due", 1, 1],
        ["emit", "button", "press", T0 + 2, 2], ["emit", "smoke", None, T0 + 3, 3],
        ["due", 4, 1], ["due", 600_001, 1], ["due", 600_002, 1]]
    out = mpy(tmp_path, {"kind": "outbox_ops", "ops": ops})
    assert [e[1] for e in out[4]] == [3]
    assert [e[1] for e in out[5]] == [1, 3]  # 1 and 3 re-sent, 2 still waits
    assert [e[1] for e in out[6]] == [2]  # HOLD_MS after it was made


def test_a_full_outbox_merges_repeats_before_it_evicts(tmp_path: Path) -> None:
    """Full of unacked life-safety events: the oldest repeat of a kind is merged into
    the oldest of that kind (which keeps its (boot, seq)), counted; nothing is evicted
    while a merge is possible, and the merge survives a reset."""
    ops: list[list[Any]] = [
        ["emit", "button", "press", T0, 0], ["due", 1, 1],  # sent: bytes final
        ["emit", "button", "press", T0 + 10, 10], ["due", 11, 1],  # held, not sent
        ["emit", "smoke", None, T0 + 20, 20], ["due", 21, 1],
        ["emit", "smoke", None, T0 + 30, 30],  # seq 3 was sent: a new event, seq 4
        ["emit", "gas", None, T0 + 40, 40],  # the fifth: room is made by a merge
        ["health"], ["state"], ["reload", 0], ["state"]]
    out = mpy(tmp_path, {"kind": "outbox_ops", "cap": 4, "ops": ops})
    assert out[8] == {"depth": 4, "evicted": 0, "merged": 1, "werr": 0}
    state = out[9]
    assert [e[1] for e in state] == [1, 3, 4, 5]
    assert state[0][2]["n"] == 2 and state[0][2]["last"] == T0 + 10
    assert state[0][2]["ts"] == T0  # the first press's own time and (boot, seq)
    assert out[11] == state


def test_send_queue_drops_oldest_telemetry_never_an_event_first(tmp_path: Path) -> None:
    """RAM queue: when full, the oldest telemetry goes; events stay."""
    put = [[False, "t1"], [True, "e1"], [False, "t2"], [False, "t3"], [True, "e2"],
           [False, "t4"]]
    out = mpy(tmp_path, {"kind": "sendq", "max_telemetry": 2, "max_events": 8, "put": put})
    assert out["items"] == ["e1", "t3", "e2", "t4"]
    assert out["dropped_telemetry"] == 2 and out["dropped_events"] == 0


# ---------------------------------------------------------------- wire
def test_mqtt_packets_match_the_services_codec(tmp_path: Path) -> None:
    """The firmware's CONNECT (persistent session, retained QoS 1 Will `lost`) and PUBLISH
    (QoS 1, DUP retransmission) are byte for byte what the services' MQTT codec builds."""
    dev, will_topic = "esp32-a1b2c3", "care/v1/s1/esp32-a1b2c3/status"
    topic = "care/v1/s1/esp32-a1b2c3/event/button"
    out = mpy(tmp_path, {"kind": "mqtt",
                         "connect": [dev, dev, "pw", 60, False, will_topic, '{"state":"lost"}'],
                         "publish": [topic, '{"v":1}', 1, False, 7, True]})
    assert bytes.fromhex(out["connect"]) == packets.connect(
        dev, 60, False, dev, "pw", (will_topic, b'{"state":"lost"}', 1, True))
    assert bytes.fromhex(out["publish"]) == packets.publish(topic, b'{"v":1}', 1, False, 7,
                                                             True)


@pytest.mark.parametrize(("reset", "failed_before", "counted"), [
    ("wdt", 2, 2),  # watchdog resets in a row count towards safe mode
    ("soft", 3, 3),  # a crash (machine.reset) too
    ("power", 3, 0),  # a power cut is not the firmware's failure
])
def test_boot_counter_and_failed_boots(tmp_path: Path, reset: str, failed_before: int,
                                       counted: int) -> None:
    """Every reset is a new, persisted boot; only resets without a healthy run in between
    (not power-ons) count towards safe mode."""
    out = mpy(tmp_path, {"kind": "state", "failed_before": failed_before}, reset=reset)
    assert out == {"boot": 8, "failed_boots": counted, "woke": False}
    assert (tmp_path / "boot.txt").read_text() == "8"
    assert (tmp_path / "bootfail.txt").read_text() == str(counted + 1)


def test_clock_normalises_the_epoch(tmp_path: Path) -> None:
    """`ts` is Unix ms on every port (the ESP32 counts from 2000: the offset fixes it)."""
    out = mpy(tmp_path, {"kind": "clock"})
    assert out["epoch_offset"] == 0  # the unix port counts from 1970 already
    assert abs(out["now_ms"] - time.time() * 1000) < 5000
    assert out["tq"] == 1  # a set RTC without NTP: time quality 1


def _sntp_server(reply_secs: int | None) -> tuple[socket.socket, threading.Thread]:
    """A real SNTP server on loopback answering one request (mode 4)."""
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))
    srv.settimeout(5)

    def serve() -> None:
        try:
            _, addr = srv.recvfrom(48)
        except OSError:
            return
        if reply_secs is None:
            return  # a server that never answers
        pkt = bytearray(48)
        pkt[0] = 0x24  # LI 0, version 4, mode 4 (server)
        struct.pack_into("!II", pkt, 40, reply_secs, 0)
        srv.sendto(bytes(pkt), addr)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return srv, t


@pytest.mark.parametrize(("reply", "ok", "tq"), [
    (int(time.time()) + 2_208_988_800, True, 2),  # a good answer: time quality 2 (NTP)
    (0, False, 0),  # an unsynchronised server (transmit time 0): ignored
    (None, False, 0),  # no answer: gives up after its timeout, never hangs
])
def test_ntp_sync_sets_time_quality(tmp_path: Path, reply: int | None, ok: bool,
                                    tq: int) -> None:
    """SNTP over a real UDP socket: only a sane server answer makes `tq` 2."""
    srv, t = _sntp_server(reply)
    try:
        out = mpy(tmp_path, {"kind": "ntp", "port": srv.getsockname()[1], "timeout_ms": 500})
    finally:
        t.join(6)
        srv.close()
    assert out == {"ok": ok, "tq": tq}


@pytest.mark.parametrize(("cfg", "error"), [
    ({"site": "s1", "device": "Bad Id", "broker_host": "h", "username": "u",
      "password": "p"}, "device must be"),
    ({"site": "s1", "device": "d1", "username": "u", "password": "p"}, "broker_host is"),
    ({"site": "s1", "device": "d1", "broker_host": "h", "username": "u", "password": "p",
      "sensors": {"lidar": {}}}, "unknown sensor lidar"),
    ({"site": "s1", "device": "d1", "broker_host": "h", "username": "u", "password": "p",
      "hb": 0}, "hb must be"),
])
def test_bad_config_is_named_in_one_line(tmp_path: Path, cfg: dict[str, Any],
                                         error: str) -> None:
    """A bad config.json stops the node with one line naming the option."""
    out = mpy(tmp_path, {"kind": "config", "cfg": cfg})
    assert error in out["error"]


def test_device_id_defaults_to_the_chip_id(tmp_path: Path) -> None:
    """No device id in the config: `esp32-<last 3 bytes of machine.unique_id()>`."""
    out = mpy(tmp_path, {"kind": "config", "cfg": {"site": "s1", "broker_host": "h",
                                                     "username": "u", "password": "p"}})
    assert out["device"] == "esp32-a1b2c3" and out["hb"] == 60
