"""The simulated population: deterministic, on the wire contract, consistent with its truth."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import orjson
import pytest

from dolbom.eval import truth as tr
from dolbom.eval.generate import (
    HOMES_FILE,
    MESSAGES_FILE,
    TRUTH_FILE,
    rx_of,
    write_chunk,
    write_population,
)
from dolbom.eval.population import DAY_MS, DEFAULT_START_MS, HomeOutput, generate_home
from dolbom.protocol import Event, Kind, Status, Telemetry, Topics, decode

DAYS = 8
TOPICS = Topics()


@cache
def home(index: int, seed: int = 7, force: frozenset[str] = frozenset()) -> HomeOutput:
    return generate_home(seed, index, DAYS, DEFAULT_START_MS, force)


@cache
def sample() -> tuple[HomeOutput, ...]:
    return tuple(home(i) for i in range(24))


def forced_any(force: str, what: str, n: int = 12) -> list[tuple[HomeOutput, tr.Item]]:
    """Homes made to have ``force`` (a fault), with their truth items of type ``what``."""
    cases = [(h, i) for h in (home(k, 21, frozenset({force})) for k in range(n))
             for i in h.truth if i.type == what]
    assert cases, f"no {what} in homes made to have {force}"
    return cases


def forced(what: str, n: int = 3) -> list[tuple[HomeOutput, tr.Item]]:
    """Homes made to have ``what``, with the truth items of that type."""
    cases = [(h, i) for h in (home(k, 21, frozenset({what})) for k in range(n))
             for i in h.truth if i.type == what]
    assert cases, f"no {what} in homes made to have one"
    return cases


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    """Two generations with the same seed write byte-identical files."""
    for d in ("a", "b"):
        write_chunk(tmp_path / d, 5, range(3), 3, DEFAULT_START_MS)
    for name in (HOMES_FILE, MESSAGES_FILE, TRUTH_FILE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_other_seed_other_population() -> None:
    """A different seed gives a different home."""
    assert generate_home(1, 0, 2).lines != generate_home(2, 0, 2).lines


def test_home_does_not_depend_on_its_shard(tmp_path: Path) -> None:
    """Chunked generation merged into one file equals one chunk of all homes."""
    write_population(tmp_path / "one", 3, 4, 2, DEFAULT_START_MS, chunk=4)
    write_population(tmp_path / "many", 3, 4, 2, DEFAULT_START_MS, chunk=1)
    for name in (HOMES_FILE, MESSAGES_FILE, TRUTH_FILE):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes()


def test_every_message_decodes_with_the_contract() -> None:
    """Every generated message parses and decodes with dolbom.protocol (contract v1)."""
    for h in sample()[:15]:
        for _, topic, payload in h.messages:
            t = TOPICS.parse(topic)
            assert t is not None, topic
            msg = decode(t, orjson.dumps(payload))
            assert isinstance(msg, Event | Telemetry | Status)


def test_messages_in_receive_order_and_envelopes_increase() -> None:
    """Lines are in rx order; (boot, seq) rise per device; ts never after rx."""
    for h in sample()[:15]:
        rxs = [rx for rx, _ in h.lines]
        assert rxs == sorted(rxs)
        assert all(rx_of(line) == rx for rx, line in h.lines)
        last: dict[str, tuple[int, int]] = {}
        for rx, topic, p in h.messages:
            if isinstance(p, dict) and "seq" in p:
                dev = topic.split("/")[3]
                key = (p["boot"], p["seq"])
                assert key > last.get(dev, (0, 0)), (topic, key)
                last[dev] = key
                assert p["ts"] <= rx


def test_devices_in_homes_json_send_and_only_they() -> None:
    """Every topic's device is in the home's device list, and battery nodes announce next."""
    for h in sample():
        ids = {d["id"]: d for d in h.spec["devices"]}
        for _, topic, p in h.messages:
            t = TOPICS.parse(topic)
            assert t is not None and t.device in ids
            if t.kind is Kind.STATUS and isinstance(p, dict) and p["state"] != "lost":
                assert ("next" in p) == (ids[t.device]["power"] == "battery")


def _activity(h: HomeOutput, a: int, b: int) -> list[str]:
    out = []
    for _, topic, p in h.messages:
        parts = topic.split("/")
        if (len(parts) == 6 and parts[5] in ("motion", "door", "bed") and isinstance(p, dict)
                and a <= p["ts"] < b):
            out.append(parts[5])
    return out


@pytest.mark.parametrize("kind", ["death", "collapse_still", "fall_still", "collapse_residual"])
def test_no_activity_while_immobile(kind: str) -> None:
    """An immobile resident makes no activity event (residual motion only in the first hour)."""
    for h, i in forced(kind):
        grace = 62 * 60_000 if kind == "collapse_residual" else 0
        assert _activity(h, i.start_ms + grace, i.end_ms) == []
        if kind == "collapse_residual":
            assert set(_activity(h, i.start_ms, i.start_ms + grace)) <= {"motion"}


def test_no_activity_while_away_or_in_hospital() -> None:
    """Nobody home: no motion, door or bed event inside an absence (after the door shuts)."""
    n = 0
    for h in [*sample(), *(x for x, _ in forced("hospital"))]:
        for i in h.truth:
            if i.category == tr.ABSENCE:
                assert _activity(h, i.start_ms + 60_000, i.end_ms - 60_000) == []
                n += 1
    assert n


def test_dead_pir_sends_nothing_and_blind_pir_only_heartbeats() -> None:
    """A dead PIR is silent; a blind one heartbeats but reports no motion."""
    for h, i in forced("pir_dead") + forced("pir_blind"):
        after = [(topic, p) for _, topic, p in h.messages
                 if topic.split("/")[3] == i.device and isinstance(p, dict)
                 and p.get("ts", 0) >= i.start_ms]
        if i.type == "pir_dead":
            assert after == []
        else:
            assert after and all(t.endswith("/telemetry") or t.endswith("/status")
                                 for t, _ in after)


def test_gateway_outage_backlog_is_late_and_hist() -> None:
    """Messages held by a gateway outage arrive after it with hist true; its Will says lost."""
    for h, i in forced("gateway_outage"):
        states = [p["state"] for rx, topic, p in h.messages
                  if "/gw/" in topic and i.start_ms <= rx <= i.end_ms + 1 and isinstance(p, dict)]
        assert states[:1] == ["lost"] and states[-1] == "ready"
        held = [(rx, p) for rx, _, p in h.messages if isinstance(p, dict) and p.get("hist")
                and i.start_ms <= p["ts"] < i.end_ms]
        assert held and all(rx >= i.end_ms for rx, _ in held)


def test_hot_rooms_are_in_heat_waves_and_sun_spikes_read_hot() -> None:
    """A sun-exposed sensor reads ≥ 32 °C during a spike while the room is not hot."""
    n = 0
    for h, i in forced("sun_spike", 2):
        hot = [i2 for i2 in h.truth if i2.type == "hot_room"
               and i2.start_ms < i.end_ms and i.start_ms < i2.end_ms]
        reads = [p["readings"]["temperature_c"] for _, topic, p in h.messages
                 if topic.split("/")[3] == i.device and isinstance(p, dict)
                 and "temperature_c" in p.get("readings", {})
                 and i.start_ms + 20 * 60_000 <= p["ts"] < i.end_ms - 20 * 60_000]
        if not hot and reads:
            assert max(reads) >= 32.0
            n += 1
    assert n


def test_truth_items_lie_in_the_run() -> None:
    """Every truth item is a non-empty interval inside the run, in its own home."""
    end = DEFAULT_START_MS + DAYS * DAY_MS
    for h in sample():
        for i in h.truth:
            assert DEFAULT_START_MS <= i.start_ms < i.end_ms <= end, i
            assert i.home == h.spec["home"]


def test_modes_only_for_told_absences() -> None:
    """A hospital or away mode entry exists exactly when the absence was told."""
    for h in sample():
        modes = [m["mode"] for m in h.spec.get("modes", [])]
        told = [i for i in h.truth if i.category == tr.ABSENCE and i.told]
        assert len([m for m in modes if m != "normal"]) == len(told)


def test_files_round_trip(tmp_path: Path) -> None:
    """truth.json reads back to the same truth; homes.json lists the homes."""
    c = write_chunk(tmp_path, 9, range(2), 2, DEFAULT_START_MS)
    assert tr.read(tmp_path / TRUTH_FILE) == c.truth
    doc = orjson.loads((tmp_path / HOMES_FILE).read_bytes())
    assert [h["home"] for h in doc["homes"]] == ["h00000", "h00001"]


def test_flat_battery_reports_low_then_goes_silent() -> None:
    """A flat battery sends battery_low when it crosses 20 % and nothing after it dies."""
    for h, i in forced_any("flat_battery", "battery_low"):
        pcts = [p["readings"]["battery_pct"] for _, topic, p in h.messages
                if topic.split("/")[3] == i.device and isinstance(p, dict)
                and "battery_pct" in p.get("readings", {}) and p["ts"] >= i.start_ms + 60_000]
        assert all(x < 20.5 for x in pcts)
    for h, i in forced_any("flat_battery", "battery_dead"):
        assert not [p for _, topic, p in h.messages if topic.split("/")[3] == i.device
                    and isinstance(p, dict) and p.get("ts", 0) >= i.start_ms]


def test_unplugged_plug_drops_off_with_a_will_and_reboots() -> None:
    """An unplugged plug sends no telemetry, its Will says lost, and it comes back rebooted."""
    for h, i in forced_any("unplugged", "plug_unplugged"):
        msgs = [(rx, p) for rx, topic, p in h.messages if topic.split("/")[3] == i.device
                and isinstance(p, dict)]
        assert not [p for _, p in msgs if "ts" in p and i.start_ms <= p["ts"] < i.end_ms]
        assert any(p.get("state") == "lost" for rx, p in msgs if rx > i.start_ms)
