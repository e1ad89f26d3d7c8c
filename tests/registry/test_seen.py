"""Ingest's last-seen writes: the plain DB-API statement (SQLite and PostgreSQL) and
what the recorder writes when (first message, status, granularity, never back)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts.model import Thresholds
from dolbom.ingest.metrics import IngestMetrics
from dolbom.ingest.seen import SeenRecorder
from dolbom.registry import service as svc
from dolbom.registry.models import Device, RegistryVersion

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)


@pytest.fixture()
def registry(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    with factory.begin() as s:
        svc.add_site(s, "s1", "Site 1")
        svc.add_home(s, "h1", "s1")
        svc.add_device(s, "d1", "s1", "h1", "multisensor")
        svc.add_device(s, "d2", "s1", "h1", "door")
    return factory


def _rows(registry: sessionmaker[Session]) -> dict[str, tuple[object, ...]]:
    with registry() as s:
        return {d.id: (d.last_seen_at, d.last_state, d.last_boot, d.fw)
                for d in s.scalars(select(Device))}


def _seen(registry: sessionmaker[Session], device: str = "d1") -> datetime | None:
    return _rows(registry)[device][0]  # type: ignore[return-value]


def test_record_devices_seen_writes_plain_values(registry: sessionmaker[Session]) -> None:
    """ms times stored exactly (UTC), None keeps a field, strings clipped, unknown ignored,
    an older time ignored: the same meaning as update_device_seen, on both databases."""
    with registry.begin() as s:
        svc.record_devices_seen(s, [("d1", MS0 + 60_123, "ready", 17, "1.2.0"),
                                    ("d2", MS0, "sleeping", 3, "9" * 40 + "\x00"),
                                    ("nope", MS0, "ready", 1, "x")])
    with registry.begin() as s:
        svc.record_devices_seen(s, [("d1", MS0 + 60_124, None, None, None)])
        svc.record_devices_seen(s, [("d2", MS0 - 1, "lost", 2, "1.0.0")])  # older: ignored
        svc.record_devices_seen(s, [])
    rows = _rows(registry)
    assert rows == {
        "d1": (T0 + timedelta(milliseconds=60_124), "ready", 17, "1.2.0"),
        "d2": (T0, "sleeping", 3, "9" * 32),
    }
    assert rows["d1"][0].tzinfo is UTC  # type: ignore[union-attr]


def test_record_devices_seen_is_no_registry_change(registry: sessionmaker[Session]) -> None:
    """Like the ORM's last-seen writes (migration 0007), no change number for the rules."""
    with registry() as s:
        n = s.scalars(select(RegistryVersion.n)).one()
    with registry.begin() as s:
        svc.record_devices_seen(s, [("d1", MS0, "ready", 1, "1.0.0")])
    with registry() as s:
        assert s.scalars(select(RegistryVersion.n)).one() == n
        assert s.get_one(Device, "d1").last_state == "ready"


def test_both_writers_compare_their_times(registry: sessionmaker[Session]) -> None:
    """The plain statement's times and the ORM's are one order (SQLite keeps text):
    neither writer moves the other's newer time back."""
    with registry.begin() as s:
        svc.record_devices_seen(s, [("d1", MS0 + 500, None, None, None)])
        svc.update_device_seen(s, [("d1", T0 + timedelta(milliseconds=499), "x", None, None)])
    assert _seen(registry) == T0 + timedelta(milliseconds=500)
    with registry.begin() as s:
        svc.update_device_seen(s, [("d1", T0 + timedelta(seconds=2), None, None, None)])
        svc.record_devices_seen(s, [("d1", MS0 + 1999, None, None, None)])
    assert _seen(registry) == T0 + timedelta(seconds=2)
    with registry.begin() as s:
        svc.record_devices_seen(s, [("d1", MS0 + 2000, None, None, None)])  # equal: written
        svc.record_devices_seen(s, [("d1", MS0 + 2001, None, None, None)])
    assert _seen(registry) == T0 + timedelta(milliseconds=2001)


async def test_a_first_message_is_written_at_the_next_flush(
        registry: sessionmaker[Session]) -> None:
    rec = SeenRecorder(registry, IngestMetrics(), granularity_s=45)
    rec.new["d1"] = MS0
    assert rec.count() == 1
    await rec.write()
    assert _seen(registry) == T0
    assert rec.count() == 1 and rec.stored == {"d1": MS0}


async def test_a_device_heard_on_is_rewritten_every_granularity(
        registry: sessionmaker[Session]) -> None:
    """Messages within the granularity of the stored time are not written; the first one
    at or past it is; a new status is written at once."""
    rec = SeenRecorder(registry, IngestMetrics(), granularity_s=45)
    rec.new["d1"] = MS0
    await rec.write()
    rec.new["d1"] = MS0 + 30_000
    await rec.write()
    assert _seen(registry) == T0
    rec.new["d1"] = MS0 + 44_999
    await rec.write()
    assert _seen(registry) == T0
    rec.new["d1"] = MS0 + 45_000
    await rec.write()
    assert _seen(registry) == T0 + timedelta(seconds=45)
    rec.new["d1"] = MS0 + 50_000
    rec.status["d1"] = ("ready", 4, "2.0.0")
    await rec.write()
    assert _rows(registry)["d1"] == (T0 + timedelta(seconds=50), "ready", 4, "2.0.0")


async def test_time_never_moves_back(registry: sessionmaker[Session]) -> None:
    """A restarted ingest (nothing stored in memory) replaying older messages, or another
    writer ahead of it, never moves a stored time back."""
    with registry.begin() as s:
        svc.update_device_seen(s, [("d1", T0 + timedelta(minutes=5), "ready", 1, None)])
    rec = SeenRecorder(registry, IngestMetrics(), granularity_s=45)
    rec.new["d1"] = MS0
    rec.status["d1"] = ("lost", 0, "0.0.1")
    await rec.write()
    assert _rows(registry)["d1"] == (T0 + timedelta(minutes=5), "ready", 1, None)
    rec.new["d1"] = MS0 - 90_000  # older than what it wrote: neither stored nor remembered
    await rec.write()
    assert rec.stored["d1"] == MS0
    assert _seen(registry) == T0 + timedelta(minutes=5)


async def test_a_failed_write_is_retried(registry: sessionmaker[Session]) -> None:
    rec = SeenRecorder(registry, IngestMetrics(), granularity_s=45)
    rec.new["d1"] = MS0
    rec.status["d1"] = ("ready", 1, None)
    broken = SeenRecorder(sessionmaker(), IngestMetrics())  # no database bound
    broken.new, broken.status = rec.new, rec.status
    await broken.write()
    assert broken.new == {"d1": MS0} and broken.status == {"d1": ("ready", 1, None)}
    assert not broken.stored
    rec.new, rec.status = broken.new, broken.status
    await rec.write()
    assert _rows(registry)["d1"] == (T0, "ready", 1, None)


async def test_restart_deadlines_stay_ahead_of_the_next_message(sqlite_url: str) -> None:
    """The bound of docs/ingest.md "Last seen": devices keeping a 60 s heartbeat (the
    shortest default), each at its own phase with ±2 s of jitter, some also sending every
    10 s; flushes every 30 s with a 45 s granularity. At every second of 20 minutes, the
    lost deadline an alerts service restarting then would re-arm from the registry (last
    seen + lost_factor × hb) is later than the device's next message: no false
    device_lost. The chatty devices are rewritten every other flush only."""
    from dolbom.registry.db import make_engine, migrate

    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    registry = sessionmaker(bind=engine, expire_on_commit=False)
    hb_ms, flush_ms = 60_000, 30_000
    lost_ms = round(Thresholds().lost_factor * hb_ms)
    jitter = (0, 2_000, -2_000)
    sends: dict[str, list[int]] = {}
    for i, phase in enumerate(range(0, hb_ms, 3_700)):
        for every in (hb_ms, 10_000):
            sends[f"d{every}-{i}"] = [MS0 + phase + k * every + jitter[k % 3]
                                      for k in range(25 * hb_ms // every)]
    with registry.begin() as s:
        svc.add_site(s, "s1", "Site 1")
        for d in sends:
            svc.add_device(s, d, "s1", None, "door")
    rec = SeenRecorder(registry, IngestMetrics(), granularity_s=45)
    end = MS0 + 20 * 60_000
    stored: dict[str, list[tuple[int, int]]] = {d: [] for d in sends}  # (from, value)
    for f in range(MS0 + flush_ms, end, flush_ms):
        for d, times in sends.items():
            heard = [t for t in times if f - flush_ms <= t < f]
            if heard:
                rec.new[d] = heard[-1]
        await rec.write()
        with registry() as s:
            for dev in s.scalars(select(Device)):
                if dev.last_seen_at is not None:
                    stored[dev.id].append((f, int(dev.last_seen_at.timestamp() * 1000)))
    engine.dispose()
    worst = 0
    for d, times in sends.items():
        for restart in range(MS0 + 2 * 60_000, end - 2 * 60_000, 1000):
            seen = max(v for at, v in stored[d] if at <= restart)
            following = min(t for t in times if t > restart)
            assert seen + lost_ms > following, (d, restart)
            worst = max(worst, following - seen)
        if d.startswith("d10000"):  # written every other flush of the 40
            assert len({v for _, v in stored[d]}) <= 21
    assert worst >= 2 * hb_ms  # the test reaches the case the bound is about
