"""A point's time is the same on every delivery of the same message (DESIGN.md §3).

Each test delivers a message to one ingest, then the same message to a second ingest
over the same data directory (a restart: the in-memory dedup window is empty) later
on the injected clock, and compares the stored points' times.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dolbom.ingest.service import Ingest
from dolbom.ingest.settings import IngestSettings
from dolbom.mqtt import Received
from dolbom.protocol import Envelope, Sample, Topics, encode_batch, encode_event, encode_telemetry
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory

T = Topics()
NOW_MS = 1_763_700_000_000
DAY_MS = 86_400_000
TEL = T.telemetry("s1", "pir-h1")


@pytest.fixture()
def settings(tmp_path: Path) -> IngestSettings:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate(url)
    with session_factory(url).begin() as s:
        registry.add_site(s, "s1", "S")
        registry.add_home(s, "h1", "s1")
        registry.add_device(s, "pir-h1", "s1", "h1", "multisensor")
    return IngestSettings(database_url=url, spool_dir=tmp_path / "spool", metrics_port=0)


def msg(topic: str, payload: bytes) -> Received:
    return Received(topic, payload, 1, False, 1, False)


def times(lines: list[bytes]) -> list[int]:
    return [int(line.rsplit(b" ", 1)[1]) for line in lines]


async def deliver(settings: IngestSettings, topic: str, payload: bytes, at_ms: int,
                  *, event: bool = False) -> list[int]:
    """One fresh ingest (as after a restart) receives ``payload`` at ``at_ms``; the times
    of the points it would write."""
    ing = Ingest(settings, clock=lambda: at_ms / 1000)
    try:
        await ing.refresh_index()
        ing.on_message(msg(topic, payload))
        batch = ing.pending.batch
        await ing.flusher.stamper.stamp(batch)
        return times(batch.events if event else batch.telemetry)
    finally:
        ing.close()


def tel(env: Envelope) -> bytes:
    return encode_telemetry(env, {"temperature_c": 21.0})


CASES = [
    # (what, payload, expected time of the first delivery at NOW_MS)
    ("tq 2, plausible", tel(Envelope(1, 7, NOW_MS - 1_000, 2)), NOW_MS - 1_000),
    ("tq 2, ten minutes old", tel(Envelope(1, 7, NOW_MS - 600_000, 2)), NOW_MS - 600_000),
    ("tq 0, unsynced", tel(Envelope(1, 7, 5_000, 0)), NOW_MS),
    ("tq 1, RTC only", tel(Envelope(1, 7, NOW_MS - 1_000, 1)), NOW_MS),
    ("tq 2, an hour ahead", tel(Envelope(1, 7, NOW_MS + 3_600_000, 2)), NOW_MS),
    ("tq 2, older than the retention", tel(Envelope(1, 7, NOW_MS - 91 * DAY_MS, 2)), NOW_MS),
    ("tq 0, replayed backlog", tel(Envelope(1, 7, 5_000, 0, hist=True)), NOW_MS),
]


@pytest.mark.parametrize("later_ms", [30_000, 600_000], ids=["30s", "10min"])
@pytest.mark.parametrize(("what", "payload", "first"), CASES, ids=[c[0] for c in CASES])
async def test_redelivery_later_keeps_the_point_time(
        settings: IngestSettings, what: str, payload: bytes, first: int, later_ms: int) -> None:
    """A message delivered again 30 s or 10 min later is stored at its first time."""
    assert await deliver(settings, TEL, payload, NOW_MS) == [first]
    assert await deliver(settings, TEL, payload, NOW_MS + later_ms) == [first]


async def test_batch_samples_keep_their_offsets(settings: IngestSettings) -> None:
    """An unsynced batch is stored at first receive time plus each sample's offset, again
    on a re-send ten minutes later."""
    payload = encode_batch(Envelope(2, 9, 100_000, 0), [
        Sample(40_000, {"battery_pct": 90.0}), Sample(70_000, {"battery_pct": 89.0}),
        Sample(100_000, {"battery_pct": 88.0})])
    expected = [NOW_MS - 60_000, NOW_MS - 30_000, NOW_MS]
    assert await deliver(settings, TEL, payload, NOW_MS) == expected
    assert await deliver(settings, TEL, payload, NOW_MS + 600_000) == expected


async def test_unsynced_event_keeps_its_time(settings: IngestSettings) -> None:
    """An event timed by our clock is stored at its first receive time on a re-send."""
    topic = T.event("s1", "pir-h1", "motion")
    payload = encode_event(Envelope(1, 3, 5_000, 0))
    assert await deliver(settings, topic, payload, NOW_MS, event=True) == [NOW_MS]
    assert await deliver(settings, topic, payload, NOW_MS + 120_000, event=True) == [NOW_MS]


async def test_clock_ahead_then_behind_keeps_the_first_time(settings: IngestSettings) -> None:
    """A message an hour ahead of our clock, re-sent two hours later (when its time is no
    longer ahead), keeps the receive time it was first stored at."""
    payload = tel(Envelope(1, 7, NOW_MS + 3_600_000, 2))
    assert await deliver(settings, TEL, payload, NOW_MS) == [NOW_MS]
    assert await deliver(settings, TEL, payload, NOW_MS + 7_200_000) == [NOW_MS]


async def test_distinct_messages_get_their_own_times(settings: IngestSettings) -> None:
    """The stored first time belongs to one (dev, boot, seq): another seq or boot is new."""
    assert await deliver(settings, TEL, tel(Envelope(1, 7, 0, 0)), NOW_MS) == [NOW_MS]
    assert await deliver(settings, TEL, tel(Envelope(1, 8, 0, 0)), NOW_MS + 1) == [NOW_MS + 1]
    assert await deliver(settings, TEL, tel(Envelope(2, 7, 0, 0)), NOW_MS + 2) == [NOW_MS + 2]


async def test_plausible_device_time_needs_no_store(settings: IngestSettings) -> None:
    """An NTP-timed message becomes its point on the hot path, without waiting for the store."""
    ing = Ingest(settings, clock=lambda: NOW_MS / 1000)
    try:
        await ing.refresh_index()
        ing.on_message(msg(TEL, tel(Envelope(1, 7, NOW_MS - 1_000, 2))))
        assert times(ing.pending.batch.telemetry) == [NOW_MS - 1_000]
    finally:
        ing.close()


async def test_first_times_past_the_retention_are_pruned(settings: IngestSettings) -> None:
    """The store is bounded: a first time older than its retention is forgotten, so a
    re-send after that is stored at its new receive time."""
    settings = settings.model_copy(update={"receive_times_retention_s": 3600.0})
    payload = tel(Envelope(1, 7, 0, 0))
    assert await deliver(settings, TEL, payload, NOW_MS) == [NOW_MS]
    later = NOW_MS + 3_600_000 + 1
    ing = Ingest(settings, clock=lambda: later / 1000)
    try:
        assert ing.times.prune(later) == 1
        assert len(ing.times) == 0
    finally:
        ing.close()
    assert await deliver(settings, TEL, payload, later) == [later]
