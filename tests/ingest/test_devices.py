"""What ingest holds per device: one ``Device`` in the index, its home's ``Place`` shared,
one copy of each registry string, the index's id as the key of every per-device dict
(memory per device, docs/ingest.md); a re-read keeps the state of the devices still there."""

from __future__ import annotations

from pathlib import Path

import pytest

from dolbom.ingest.service import Ingest
from dolbom.ingest.settings import IngestSettings
from dolbom.mqtt import Received
from dolbom.protocol import Envelope, Topics, encode_telemetry
from dolbom.protocol.dedup import NEW
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory

T = Topics()
NOW = 1_763_700_000.0


@pytest.fixture()
def ing(tmp_path: Path) -> Ingest:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate(url)
    with session_factory(url).begin() as s:
        registry.add_site(s, "s1", "S")
        registry.add_home(s, "h1", "s1")
        registry.add_home(s, "h2", "s1")
        for d in ("pir-h1", "door-h1", "door2-h1"):
            registry.add_device(s, d, "s1", "h1", "door" if d != "pir-h1" else "multisensor")
    return Ingest(IngestSettings(database_url=url, spool_dir=tmp_path / "spool",
                                 metrics_port=0), clock=lambda: NOW)


def _tel(device: str, seq: int) -> Received:
    pay = encode_telemetry(Envelope(1, seq, int(NOW * 1000), 2), {"temperature_c": 20.0})
    return Received(T.telemetry("s1", device), pay, 1, False, 1, False)


async def test_one_copy_of_each_string_per_device(ing: Ingest) -> None:
    await ing.refresh_index()
    index = ing.devices.index
    pir, door, door2 = index["pir-h1"], index["door-h1"], index["door2-h1"]
    assert pir.place is door.place is door2.place  # one place per home, whatever the kind
    assert pir.place.tags == "site=s1,home=h1,device="
    # a message's device id (a new string from its topic) is stored as the index's copy
    ing.on_message(_tel("pir-h1", 1))
    key = next(k for k in index if k == "pir-h1")
    (seen,) = ing.seen.new
    assert seen is key and pir.id is key
    assert pir.window != NEW and door.window == NEW


async def test_a_re_read_keeps_the_devices_still_there(ing: Ingest) -> None:
    """Adding a device or revoking one re-reads the index: the devices still in it keep
    their duplicate window and last-seen time; a revoked one's are gone."""
    await ing.refresh_index()
    for d in ("pir-h1", "door-h1"):
        ing.on_message(_tel(d, 1))
    await ing.seen.write()
    assert len(ing.seen.stored) == 2 and ing.seen.count() == 2
    pir = ing.devices.index["pir-h1"]
    with ing._sessions.begin() as s:
        registry.add_device(s, "bed-h2", "s1", "h2", "bed")
        registry.revoke_device(s, "door-h1")
    await ing.refresh_index()
    index = ing.devices.index
    assert index["pir-h1"] is pir and "door-h1" not in index
    assert index["bed-h2"].place.tags == "site=s1,home=h2,device="
    assert index["door2-h1"].place is pir.place
    assert ing.seen.stored == {"pir-h1": int(NOW * 1000)} and ing.seen.count() == 1
    ing.on_message(_tel("pir-h1", 1))  # a redelivery: still known
    assert ing.counts.duplicates == 1


async def test_an_odd_id_is_escaped(ing: Ingest) -> None:
    """No registry id needs escaping in line protocol; one that did would still be."""
    from dolbom.ingest.devices import Place, new_device

    place = Place("s1", "h1")
    assert new_device("pir-h1", place).tags() == "site=s1,home=h1,device=pir-h1"
    assert new_device("a b,c=d", place).tags() == r"site=s1,home=h1,device=a\ b\,c\=d"
    assert new_device("x\\y", Place("s 1", None)).tags() == r"site=s\ 1,device=x/y"
