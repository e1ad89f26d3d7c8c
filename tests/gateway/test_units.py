"""Pure parts of the gateway: the durable queue's rules, what a local message is, the
backlog's hist mark, the Zigbee2MQTT mapping and the Home Assistant discovery config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dolbom.gateway.classify import Refused, ack_key, classify, mark_hist
from dolbom.gateway.discovery import configs
from dolbom.gateway.queue import Cls, Item, Queue
from dolbom.gateway.z2m import Z2MBridge, availability, map_state
from dolbom.protocol import Envelope, Event, Status, Telemetry, decode, encode_event
from dolbom.protocol.topics import Topics

T = Topics()


def item(seq: int | None, cls: Cls = Cls.TELEMETRY, dev: str = "d1", size: int = 10,
         topic: str | None = None) -> Item:
    return Item(topic or f"care/v1/s1/{dev}/telemetry", b"x" * size, cls, False, seq or 0,
                True, dev, 1 if seq is not None else None, seq)


def test_queue_evicts_telemetry_oldest_first_never_life_safety(tmp_path: Path) -> None:
    """Past the bound, the oldest telemetry goes first, then other events; life-safety
    events stay even over the bound, which is then reported; totals survive a reopen."""
    q = Queue(tmp_path / "q.sqlite", max_messages=100, max_bytes=10**6)
    q.put_many([item(1, Cls.LIFE_SAFETY)] + [item(i) for i in range(2, 101)])
    q.put_many([item(101, Cls.EVENT), item(102), item(103, Cls.LIFE_SAFETY)])
    assert q.count == 100 and q.counters["evicted_telemetry"] == 3
    rows = q.others_after(0, 1000)
    assert [r.rx_ms for r in rows][:2] == [5, 6]  # 2, 3, 4 were the oldest telemetry
    assert len(q.life_safety_due(10**12, set(), 10)) == 2
    q.put_many([item(i, Cls.LIFE_SAFETY) for i in range(200, 400)])
    assert q.over_bound and q.depth() == (202, 202)  # nothing but alarms left, all kept
    assert q.counters["evicted_events"] == 1
    q.close()
    q2 = Queue(tmp_path / "q.sqlite", max_messages=100, max_bytes=10**6)
    assert q2.counters["evicted_telemetry"] == 100 and q2.count == 202


def test_queue_keys_statuses_and_acks(tmp_path: Path) -> None:
    """A re-sent message is queued once (its newest payload kept); a newer status
    replaces the waiting one; an ack removes only its own life-safety event."""
    q = Queue(tmp_path / "q.sqlite", 1000, 10**6)
    assert q.put_many([item(1, Cls.LIFE_SAFETY), item(1, Cls.LIFE_SAFETY, size=12)]) == 1
    assert q.life_safety_due(10**12, set(), 10)[0].payload == b"x" * 12
    st = "care/v1/s1/d1/status"
    q.put_many([item(None, Cls.STATUS, topic=st), item(None, Cls.STATUS, topic=st, size=3)])
    assert [r.payload for r in q.others_after(0, 10)] == [b"xxx"]
    assert not q.acked("d1", 1, 2) and q.acked("d1", 1, 1)
    assert q.depth() == (1, 0) and q.counters["acked"] == 1
    assert q.new_boot() == 1 and q.new_boot() == 2


@pytest.mark.parametrize(("topic", "payload", "expect"), [
    ("care/v1/s1/d1/telemetry", b'{"v":1,"boot":3,"seq":9}', (Cls.TELEMETRY, 3, 9)),
    ("care/v1/s1/d1/event/button", b'{"v":1,"boot":3,"seq":10}', (Cls.LIFE_SAFETY, 3, 10)),
    ("care/v1/s1/d1/event/door", b'{"boot":1,"seq":-1}', (Cls.EVENT, None, None)),
    ("care/v1/s1/d1/event/smoke", b"not json", (Cls.LIFE_SAFETY, None, None)),
    ("care/v1/s1/d1/status", b'{"state":"ready"}', (Cls.STATUS, None, None)),
    ("care/v1/s1/d2/telemetry", b"{}", "not_child"),
    ("care/v1/s9/d1/telemetry", b"{}", "other_site"),
    ("care/v1/s1/d1/ack", b"{}", "not_uplink"),
    ("elsewhere/d1", b"{}", "not_uplink"),
])
def test_classify(topic: str, payload: bytes, expect: object) -> None:
    """What the gateway queues of a local message: class and dedup key, or why not."""
    r = classify(T, "s1", frozenset({"d1"}), topic, payload, False, 5, True)
    if isinstance(r, Refused):
        assert r.reason == expect
    else:
        assert (r.cls, r.boot, r.seq) == expect and r.payload == payload
        assert r.retain is (r.cls is Cls.STATUS)


def test_hist_mark_and_ack_key() -> None:
    """Backlog gets "hist": true and stays valid contract v1; odd payloads pass as is."""
    raw = encode_event(Envelope(2, 7, 1_760_000_000_000, 2), "press")
    marked = mark_hist(raw)
    m = decode(T.parse("care/v1/s1/d1/event/button"), marked)  # type: ignore[arg-type]
    assert isinstance(m, Event) and m.env.hist and m.val == "press" and m.env.seq == 7
    assert mark_hist(b"[1]") == b"[1]" and mark_hist(b"\xff") == b"\xff"
    assert ack_key(b'{"boot":2,"seq":7}') == (2, 7) and ack_key(b"x") is None


# Payloads as Zigbee2MQTT publishes them (its device pages' exposes, zigbee2mqtt.io).
AQARA_MOTION = {"battery": 100, "illuminance": 381, "illuminance_lux": 381,
                "linkquality": 164, "occupancy": True, "voltage": 3045,
                "device_temperature": 27}
AQARA_DOOR = {"battery": 100, "contact": False, "device_temperature": 20, "linkquality": 147,
              "power_outage_count": 6, "voltage": 3025}
AQARA_TH = {"battery": 100, "humidity": 58.49, "linkquality": 156, "pressure": 1008.2,
            "temperature": 21.93, "voltage": 3025}
AQARA_BUTTON = {"action": "single", "battery": 100, "linkquality": 134, "voltage": 3042}
HEIMAN_SMOKE = {"battery": 100, "battery_low": False, "linkquality": 120, "smoke": True,
                "tamper": False}
HEIMAN_GAS = {"gas": True, "linkquality": 80, "tamper": False}
AQARA_LEAK = {"battery": 100, "linkquality": 130, "voltage": 3055, "water_leak": True}
TUYA_PLUG = {"current": 0.04, "energy": 1.2, "linkquality": 120, "power": 5, "state": "ON",
             "voltage": 229}


@pytest.mark.parametrize(("prev", "state", "events", "readings"), [
    (None, AQARA_MOTION, [("motion", None)], {"battery_pct": 100.0, "illuminance_lux": 381.0}),
    (AQARA_MOTION, {**AQARA_MOTION, "battery": 99}, [], {"battery_pct": 99.0,
                                                          "illuminance_lux": 381.0}),
    ({**AQARA_MOTION, "occupancy": False}, AQARA_MOTION, [("motion", None)],
     {"battery_pct": 100.0, "illuminance_lux": 381.0}),
    (None, AQARA_DOOR, [("door", "open")], {"battery_pct": 100.0}),
    (AQARA_DOOR, {**AQARA_DOOR, "contact": True}, [("door", "closed")], {"battery_pct": 100.0}),
    (AQARA_DOOR, AQARA_DOOR, [], {"battery_pct": 100.0}),
    (None, AQARA_TH, [], {"battery_pct": 100.0, "humidity_pct": 58.49,
                          "temperature_c": 21.93}),
    (None, AQARA_BUTTON, [("button", "single")], {"battery_pct": 100.0}),
    (None, {"action": ""}, [], {}),
    (None, HEIMAN_SMOKE, [("smoke", "alarm")], {"battery_pct": 100.0}),
    (HEIMAN_SMOKE, HEIMAN_SMOKE, [], {"battery_pct": 100.0}),
    (None, HEIMAN_GAS, [("gas", "alarm")], {}),
    (None, {"battery_low": True, "tamper": True}, [("tamper", None), ("battery_low", None)],
     {}),
    (None, AQARA_LEAK, [], {"battery_pct": 100.0}),
    (None, TUYA_PLUG, [], {"power_w": 5.0}),
    (None, {"temperature": float("nan"), "battery": True, "humidity": "50"}, [], {}),
])
def test_z2m_mapping(prev: dict[str, Any] | None, state: dict[str, Any],
                     events: list[tuple[str, object]], readings: dict[str, float]) -> None:
    """Zigbee2MQTT's documented fields → contract-v1 events (on a change) and readings."""
    m = map_state(prev, state)
    assert list(m.events) == events and m.readings == readings
    assert m.unmapped == (("water_leak",) if state is AQARA_LEAK else ())


def test_z2m_bridge_messages_are_valid_contract_v1() -> None:
    """The bridge's messages decode as contract v1 on the child's topics, with the
    gateway's boot and a growing seq; availability becomes the child's status."""
    b = Z2MBridge(T, "s1", "zigbee2mqtt", {"0x00158d0001": "zb-door"}, boot=4)
    items = b.translate("zigbee2mqtt/0x00158d0001", orjson.dumps(AQARA_DOOR), 1_760_000_000_000,
                        True)
    assert not isinstance(items, Refused)
    msgs = [decode(T.parse(i.topic), i.payload) for i in items]  # type: ignore[arg-type]
    assert isinstance(msgs[0], Event) and msgs[0].val == "open" and msgs[0].env.boot == 4
    assert isinstance(msgs[1], Telemetry) and msgs[1].env.seq == 2
    (st,) = b.translate("zigbee2mqtt/0x00158d0001/availability", b'{"state":"offline"}', 1,
                        True)  # type: ignore[misc]
    s = decode(T.parse(st.topic), st.payload)  # type: ignore[arg-type]
    assert isinstance(s, Status) and s.state == "lost" and st.retain
    assert availability(b"online") == "ready" and availability(b"{}") is None
    assert isinstance(b.translate("zigbee2mqtt/other", b"{}", 1, True), Refused)
    assert isinstance(b.translate("zigbee2mqtt/bridge/state", b"{}", 1, True), Refused)


def test_discovery_is_device_based_and_anonymous() -> None:
    """One retained device config per child; entities read the child's own topics; no
    home, resident or site name in it beyond the opaque ids."""
    out = configs(T, "s1", {"esp32-a1": "multisensor", "zb-door": "door", "x": None},
                  "homeassistant")
    topics = [t for t, _ in out]
    assert topics == ["homeassistant/device/dolbom_esp32-a1/config",
                      "homeassistant/device/dolbom_x/config",
                      "homeassistant/device/dolbom_zb-door/config"]
    cfg = orjson.loads(out[0][1])
    assert cfg["availability_topic"] == "care/v1/s1/esp32-a1/status"
    assert cfg["dev"]["name"] == "Dolbom multisensor esp32-a1"
    comps = cfg["cmps"]
    assert comps["dolbom_esp32-a1_temperature"]["state_topic"] == "care/v1/s1/esp32-a1/telemetry"
    assert {c["p"] for c in comps.values()} == {"sensor", "binary_sensor"}
    assert set(orjson.loads(out[1][1])["cmps"]) == {"dolbom_x_battery"}
