"""What ingest holds per device (DESIGN.md §7: ≤ 256 B), and that holding less changed
nothing it does: the same line protocol, byte for byte, the same duplicates dropped and
the same last-seen times remembered (docs/ingest.md, "Last seen")."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import sessionmaker

from dolbom.bench.ingest_memory import measure_ingest_memory
from dolbom.ingest.devices import DeviceIndex, Place, SeenTimes, new_device
from dolbom.ingest.points import series_tags, to_points, untimed_points
from dolbom.ingest.service import Ingest
from dolbom.ingest.settings import IngestSettings
from dolbom.mqtt import Received
from dolbom.protocol import (
    Envelope,
    Event,
    Sample,
    Telemetry,
    Topics,
    decode,
    encode_batch,
    encode_event,
    encode_status,
)
from dolbom.protocol.dedup import Deduper
from dolbom.protocol.messages import MAX_INT
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory

T = Topics()
NOW = 1_763_700_000.0
NOW_MS = int(NOW * 1000)


def test_ingest_holds_at_most_256_bytes_per_device() -> None:
    """tracemalloc over 20,000 devices, six to a home, each heard twice (the benchmark
    measures 300,000 the same way: ``dolbom.bench.ingest_memory``)."""
    m = measure_ingest_memory(20_000)
    assert m.devices == 20_000 and m.per_home == 6
    assert m.bytes_per_device <= 256, m
    assert sum(m.parts.values()) == pytest.approx(m.bytes_per_device)
    assert set(m.parts) == {"index", "tags", "state", "other"}


@pytest.fixture()
def ing(tmp_path: Path) -> Ingest:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate(url)
    with session_factory(url).begin() as s:
        registry.add_site(s, "s1", "S")
        registry.add_site(s, "site_2-b", "S")
        registry.add_home(s, "h1", "s1")
        registry.add_home(s, "home_2-x", "site_2-b")
        registry.add_device(s, "pir-h1", "s1", "h1", "multisensor")
        registry.add_device(s, "door_h1-2", "s1", "h1", "door")
        registry.add_device(s, "x" * 48, "site_2-b", "home_2-x", "bed")
        registry.add_device(s, "spare-1", "s1", None, "plug")  # in no home
    return Ingest(IngestSettings(database_url=url, spool_dir=tmp_path / "spool",
                                 metrics_port=0, batch_size=1000), clock=lambda: NOW)


async def test_the_hot_path_writes_series_tags_byte_for_byte(ing: Ingest) -> None:
    """Every kind of message, device-timed or timed by our clock, from devices of several
    sites and homes (and one in none): the lines are ``to_points``' with the tag set
    ``series_tags`` escapes from the registry's site and home and the topic's device."""
    await ing.refresh_index()
    homes = {"pir-h1": "h1", "door_h1-2": "h1", "x" * 48: "home_2-x", "spare-1": None}
    sites = {"pir-h1": "s1", "door_h1-2": "s1", "x" * 48: "site_2-b", "spare-1": "s1"}
    timed = Envelope(3, 10, NOW_MS - 5000, 2)
    ours = Envelope(3, 11, NOW_MS - 5000, 0)  # not NTP-synced: timed at the flush
    sent: list[tuple[str, bytes]] = []
    for dev, site in sites.items():
        sent += [
            (T.telemetry(site, dev), encode_batch(timed, [
                Sample(timed.ts - 1000, {"temperature_c": 20.5, "rssi_dbm": -61.0}),
                Sample(timed.ts, {"battery_pct": 80.0})])),
            (T.event(site, dev, "door"), encode_event(Envelope(3, 12, timed.ts, 2), "open")),
            (T.event(site, dev, "fall"), encode_event(Envelope(3, 13, timed.ts, 2), None)),
            (T.status(site, dev), encode_status("ready", boot=3, fw="1.2.0", kind="door")),
            (T.telemetry(site, dev), encode_batch(ours, [Sample(ours.ts, {"power_w": 5.0})])),
        ]
    sent.append((T.gateway_status("s1", "gw-1"), encode_status("ready", boot=1)))
    with ing._sessions.begin() as s:  # a gateway is a device of the registry too
        registry.add_device(s, "gw-1", "s1", None, "gateway")
    await ing.refresh_index()
    for pid, (topic, payload) in enumerate(sent, 1):
        ing.on_message(Received(topic, payload, 1, False, pid, False))
    homes["gw-1"] = None
    expected_events: list[bytes] = []
    expected_telemetry: list[bytes] = []
    expected_timed: list[tuple[tuple[str, int], ...]] = []
    for topic, payload in sent:
        m = decode(T.parse(topic), payload)
        home = homes[m.topic.device]
        if isinstance(m, Telemetry | Event) and m.env.tq != 2:
            expected_timed.append(untimed_points(
                m, series_tags(m.topic.site, home, m.topic.device)))
            continue
        base = m.env.ts if isinstance(m, Telemetry | Event) else None
        for p in to_points(m, home, NOW_MS, None, base):
            (expected_events if p.event else expected_telemetry).append(p.line)
    batch = ing.pending.batch
    assert batch.events == expected_events
    assert batch.telemetry == expected_telemetry
    assert [t[3] for t in batch.timed] == expected_timed
    assert b"site=site_2-b,home=home_2-x,device=" + b"x" * 48 + b" " in b"".join(
        batch.telemetry)
    assert any(line.startswith(b"reading,site=s1,device=spare-1 ") for line in batch.telemetry)


@given(st.text(), st.one_of(st.none(), st.text()), st.text())
def test_a_device_s_tags_are_series_tags_whatever_its_ids(site: str, home: str | None,
                                                          device: str) -> None:
    """The tag set kept per home plus the device's id is ``series_tags``' for any site,
    home and device (ids that need escaping are escaped: no registry id does)."""
    assert new_device(device, Place(site, home)).tags() == series_tags(site, home, device)


_steps = st.lists(st.one_of(
    st.tuples(st.just("msg"), st.sampled_from("abc"), st.integers(0, 2),
              st.one_of(st.integers(0, 300), st.just(MAX_INT))),
    st.tuples(st.just("seen"), st.sampled_from("abcz"), st.integers(1, 2**47), st.just(0)),
    st.tuples(st.just("forget"), st.sampled_from("abcz"), st.just(0), st.just(0))),
    max_size=200)


@given(_steps)
def test_a_device_s_window_and_last_seen_time_are_kept_apart(
        steps: list[tuple[str, str, int, int]]) -> None:
    """One int per device holds both: duplicates are the protocol's ``Deduper``'s and the
    last-seen times a dict's (``SeenRecorder.stored`` without a device index), for devices
    in the index; a device not in it (``z``: revoked since it was heard) keeps none."""
    index = DeviceIndex(sessionmaker())
    place = Place("s1", "h1")
    index.index = {d: new_device(d, place) for d in "abc"}
    times = SeenTimes(index)
    dedup, ref = Deduper(), dict[str, int]()
    for op, dev, a, b in steps:
        if op == "msg":
            assert index.index[dev].duplicate(a, b) == dedup.seen(dev, a, b)
        elif op == "seen":
            times[dev] = a
            if dev != "z":
                ref[dev] = a
        elif dev in times:
            del times[dev]
            del ref[dev]
        else:
            with pytest.raises(KeyError):
                del times[dev]
        assert times == ref and len(times) == len(ref) and sorted(times) == sorted(ref)
        assert all(times.get(d) == ref.get(d) and (d in times) == (d in ref) for d in "abcz")
