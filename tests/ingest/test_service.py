"""Ingest's message handling without a broker: enrichment, parking, dead letters, backpressure."""

from __future__ import annotations

from pathlib import Path

import pytest

from dolbom.ingest.service import Ingest
from dolbom.ingest.settings import IngestSettings
from dolbom.mqtt import Received
from dolbom.protocol import Envelope, Topics, encode_event, encode_telemetry
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory

T = Topics()
NOW = 1_763_700_000.0


@pytest.fixture()
def ingest(tmp_path: Path) -> Ingest:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate(url)
    with session_factory(url).begin() as s:
        registry.add_site(s, "s1", "S")
        registry.add_home(s, "h1", "s1")
        registry.add_device(s, "pir-h1", "s1", "h1", "multisensor")
    settings = IngestSettings(database_url=url, spool_dir=tmp_path / "spool", metrics_port=0,
                              batch_size=3, max_pending=100)
    return Ingest(settings, clock=lambda: NOW)


def msg(topic: str, payload: bytes, pid: int = 1) -> Received:
    return Received(topic, payload, 1, False, pid, False)


def tel(seq: int) -> bytes:
    return encode_telemetry(Envelope(1, seq, int(NOW * 1000), 2), {"temperature_c": 20.0})


async def test_known_device_enriched_with_its_home(ingest: Ingest) -> None:
    """A message from a registered device becomes a point tagged with its home."""
    await ingest.refresh_index()
    ingest.on_message(msg(T.telemetry("s1", "pir-h1"), tel(1)))
    (line,) = ingest.pending.batch.telemetry
    assert line.startswith(b"reading,site=s1,home=h1,device=pir-h1 temperature_c=20.0 ")
    assert len(ingest.pending.batch.acks) == 1


async def test_device_added_after_start_is_parked_then_stored(ingest: Ingest) -> None:
    """A device provisioned after ingest started is stored from its first message."""
    await ingest.refresh_index()
    with ingest._sessions.begin() as s:
        registry.add_device(s, "door-h1", "s1", "h1", "door")
    ingest.on_message(msg(T.event("s1", "door-h1", "door"),
                          encode_event(Envelope(1, 1, int(NOW * 1000), 2), "open")))
    assert ingest.intake.parked and not ingest.pending.batch.acks
    await ingest.refresh_index()
    assert not ingest.intake.parked
    events = ingest.pending.batch.events
    assert events and events[0].startswith(b"event,site=s1,home=h1,")


async def test_unknown_device_is_dead_lettered_after_refresh(ingest: Ingest) -> None:
    """A device the registry does not know is dead-lettered (not stored, not lost silently)."""
    await ingest.refresh_index()
    ingest.on_message(msg(T.telemetry("s1", "ghost"), tel(1)))
    await ingest.refresh_index()
    (dead,) = ingest.pending.batch.dead
    assert (dead.reason, dead.device) == ("unknown_device", "ghost")
    assert not ingest.pending.batch.telemetry and len(ingest.pending.batch.acks) == 1


async def test_site_mismatch_is_dead_lettered(ingest: Ingest) -> None:
    """A message whose topic site differs from the device's registered site is refused."""
    await ingest.refresh_index()
    ingest.on_message(msg(T.telemetry("s2", "pir-h1"), tel(1)))
    assert [d.reason for d in ingest.pending.batch.dead] == ["site_mismatch"]


async def test_full_batch_requests_a_flush(ingest: Ingest) -> None:
    """Reaching batch_size wakes the flusher instead of waiting for the interval."""
    await ingest.refresh_index()
    for seq in range(1, 4):
        ingest.on_message(msg(T.telemetry("s1", "pir-h1"), tel(seq), pid=seq))
    assert ingest.intake.flush_now.is_set()


async def test_unchanged_registry_is_not_re_read(ingest: Ingest) -> None:
    """The periodic refresh keeps the cached index while no device was added or revoked,
    and drops a revoked device at the next refresh."""
    await ingest.refresh_index()
    cached = ingest.devices.index
    await ingest.refresh_index()
    assert ingest.devices.index is cached
    with ingest._sessions.begin() as s:
        registry.revoke_device(s, "pir-h1")
    await ingest.refresh_index()
    assert "pir-h1" not in ingest.devices.index


async def test_intake_lines_are_to_points_lines(ingest: Ingest) -> None:
    """Intake builds a device-timed message's lines itself: exactly ``to_points``'."""
    from dolbom.ingest.points import to_points
    from dolbom.protocol import Sample, decode, encode_batch

    await ingest.refresh_index()
    env = Envelope(1, 7, int(NOW * 1000) - 5000, 2)
    cases = [
        (T.telemetry("s1", "pir-h1"), encode_batch(env, [
            Sample(env.ts - 1000, {"temperature_c": 20.5}), Sample(env.ts, {})])),
        (T.event("s1", "pir-h1", "door"), encode_event(Envelope(1, 8, env.ts, 2), "open")),
        (T.event("s1", "pir-h1", "fall"), encode_event(Envelope(1, 9, env.ts, 2), None)),
    ]
    for topic, payload in cases:
        ingest.on_message(msg(topic, payload))
    batch = ingest.pending.batch
    expected = [p for topic, payload in cases
                for p in to_points(decode(T.parse(topic), payload), "h1", env.ts, None, env.ts)]
    assert batch.telemetry == [p.line for p in expected if not p.event]
    assert batch.events == [p.line for p in expected if p.event]
    assert len(batch.events) == 2 and len(batch.telemetry) == 1
