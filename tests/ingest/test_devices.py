"""What ingest holds per device: one copy of each registry string, the index's id as the
key of every per-device dict (memory per device, docs/ingest.md)."""

from __future__ import annotations

from pathlib import Path

from dolbom.ingest.service import Ingest
from dolbom.ingest.settings import IngestSettings
from dolbom.mqtt import Received
from dolbom.protocol import Envelope, Topics, encode_telemetry
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory

T = Topics()
NOW = 1_763_700_000.0


async def test_one_copy_of_each_string_per_device(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate(url)
    with session_factory(url).begin() as s:
        registry.add_site(s, "s1", "S")
        registry.add_home(s, "h1", "s1")
        for d in ("pir-h1", "door-h1", "door2-h1"):
            registry.add_device(s, d, "s1", "h1", "door" if d != "pir-h1" else "multisensor")
    ing = Ingest(IngestSettings(database_url=url, spool_dir=tmp_path / "spool",
                                metrics_port=0), clock=lambda: NOW)
    await ing.refresh_index()
    index = ing.devices.index
    pir, door, door2 = index["pir-h1"], index["door-h1"], index["door2-h1"]
    assert pir.site is door.site and pir.home is door.home
    assert door is door2  # same site, home and kind: one reference
    # a message's device id (a new string from its topic) is stored as the index's copy
    topic = T.telemetry("s1", "pir-h1")
    pay = encode_telemetry(Envelope(1, 1, int(NOW * 1000), 2), {"temperature_c": 20.0})
    ing.on_message(Received(topic, pay, 1, False, 1, False))
    key = next(k for k in index if k == "pir-h1")
    (seen,) = ing.seen.new
    (deduped,) = ing.intake.dedup._state
    assert seen is key and deduped is key
