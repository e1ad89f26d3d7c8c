"""Last-seen times are only as coarse as the fleet's shortest heartbeat allows (ingest
``seen``, docs/ingest.md "Last seen"): the granularity never exceeds the shortest
heartbeat an active device promised, less a margin, so a fleet with a 10 s device writes
every heard device at every flush, as before the granularity existed. SQLite and
PostgreSQL for the registry read."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dolbom.ingest.devices import DeviceIndex
from dolbom.ingest.metrics import IngestMetrics
from dolbom.ingest.seen import HB_MARGIN_S, SeenRecorder
from dolbom.registry import service as svc
from dolbom.registry.db import make_engine, migrate

MS0 = 1_767_268_800_000


@pytest.fixture()
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    migrate(db_url)
    engine = make_engine(db_url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def _recorder(shortest: int | None) -> SeenRecorder:
    return SeenRecorder(sessionmaker(), IngestMetrics(), granularity_s=45,
                        shortest_hb=lambda: shortest)


def test_the_granularity_follows_the_shortest_heartbeat() -> None:
    assert _recorder(None).effective_granularity_ms() == 45_000  # no device yet
    assert _recorder(300).effective_granularity_ms() == 45_000
    assert _recorder(60).effective_granularity_ms() == (60 - HB_MARGIN_S) * 1000
    assert _recorder(50).effective_granularity_ms() == 35_000
    assert _recorder(10).effective_granularity_ms() == 0


def test_a_short_heartbeat_fleet_writes_every_heard_device_at_every_flush() -> None:
    coarse, fine = _recorder(60), _recorder(10)
    for rec in (coarse, fine):
        rec.stored["d1"] = MS0  # written at the last flush
        rec.new["d1"] = MS0 + 30_000  # heard again before this one
    assert coarse.due() == []
    assert fine.due() == [("d1", MS0 + 30_000, None, None, None)]


async def test_the_device_index_reads_the_shortest_heartbeat(
        factory: sessionmaker[Session]) -> None:
    index = DeviceIndex(factory)
    await index.load()
    assert index.shortest_hb_s is None
    with factory.begin() as s:
        svc.add_site(s, "s1", "Site 1")
        svc.add_device(s, "slow", "s1", None, "door", hb_s=300)
        svc.add_device(s, "fast", "s1", None, "multisensor", hb_s=20)
    await index.load()
    assert index.shortest_hb_s == 20
    with factory.begin() as s:
        svc.revoke_device(s, "fast")
    await index.load()
    assert index.shortest_hb_s == 300
