"""Memory per device of the ingest service (DESIGN.md §7: ≤ 256 B per device).

Builds a registry of ``devices`` devices, ``per_home`` to a home (the benchmark fleet's
kinds and ids, 1,200 homes to a site), has an ``Ingest`` read its device index as it
does at start-up (``Ingest.refresh_index``), feeds every device two NTP-timed telemetry
messages through the hot path (``Ingest.on_message``, the batch taken every
``batch_size`` messages as a flush would), writes the last-seen times
(``SeenRecorder.write``), and measures with ``tracemalloc`` what the service then holds,
per device. The batches are not counted (they leave with their flush), nor the 1-minute
rollup's open minutes: they are per home and per minute, and reported apart
(``rollup_bytes_per_device``, for one open minute).

The parts: ``index`` (the device ids, the dict, each device's ``Device`` and its home's
``Place`` with its strings), ``tags`` (the homes' line-protocol tag-set prefixes),
``state`` (each device's duplicate window and last-seen time written, one int:
``Device.state``) and ``other`` (what is left). The index is what reading it added; the
others what dropping them gives back.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert

from dolbom.bench.fleet import HOME, HOMES_PER_SITE
from dolbom.ingest.service import Ingest
from dolbom.ingest.settings import IngestSettings
from dolbom.mqtt import Received
from dolbom.protocol import Envelope, Topics, encode_telemetry
from dolbom.protocol.dedup import NEW
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import Device, Home, Site


@dataclass(frozen=True)
class IngestMemory:
    devices: int
    per_home: int
    bytes_per_device: float  # the sum of ``parts``
    parts: dict[str, float]  # bytes per device: index, tags, state, other
    rollup_bytes_per_device: float  # one open minute of the per-home rollup, apart
    seconds: float  # the whole measurement, traced (slower than untraced)


def _site(home: int) -> str:
    return f"site-{home // HOMES_PER_SITE:03d}"


def _fleet(url: str, devices: int, per_home: int) -> list[tuple[str, str, int]]:
    """The registry's sites, homes and devices; (device, site, kind index) per device."""
    migrate(url)
    homes = -(-devices // per_home)
    fleet = [(f"dev-{i // per_home:06d}-{i % per_home}", _site(i // per_home),
              i % per_home % len(HOME)) for i in range(devices)]
    with session_factory(url).begin() as s:
        s.execute(insert(Site), [{"id": f"site-{i:03d}", "name": "bench"}
                                 for i in range(-(-homes // HOMES_PER_SITE))])
        s.execute(insert(Home), [{"id": f"home-{i:06d}", "site_id": _site(i), "label": "",
                                  "mode": "normal"} for i in range(homes)])
        s.execute(insert(Device), [
            {"id": dev, "site_id": site, "home_id": f"home-{i // per_home:06d}",
             "kind": HOME[k].kind, "power": "mains", "hb_s": 60, "mqtt_hash": "-"}
            for i, (dev, site, k) in enumerate(fleet)])
    return fleet


def _messages(fleet: list[tuple[str, str, int]], now_ms: int) -> Iterator[Received]:
    """Two telemetry messages per device (seq 1 and 2, NTP-timed), made as they are fed
    (no list of them all: they run under tracemalloc)."""
    topics = Topics()
    for seq in (1, 2):
        for dev, site, k in fleet:
            readings = {r.name: r.base for r in HOME[k].readings}
            payload = encode_telemetry(Envelope(1, seq, now_ms - 2000 + seq * 1000, 2),
                                       readings)
            yield Received(topics.telemetry(site, dev), payload, 1, False, seq, False)


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def measure_ingest_memory(devices: int = 300_000, per_home: int = 6) -> IngestMemory:
    if devices < 1 or per_home < 1:
        raise ValueError("devices and per_home must be at least 1")
    now = time.time() // 60 * 60 + 30  # both messages of a device in one minute
    now_ms = int(now * 1000)
    t_start = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'fleet.db'}"
        fleet = _fleet(url, devices, per_home)
        ing = Ingest(IngestSettings(database_url=url, spool_dir=Path(d) / "spool",
                                    metrics_port=0), clock=lambda: now)
        with ing.devices.sessions() as s:  # the ORM's one-off set-up, outside the count
            registry.device_index_version(s)
        batch_size = ing.settings.batch_size
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            asyncio.run(ing.refresh_index())
            loaded = _traced()
            for msg in _messages(fleet, now_ms):
                ing.on_message(msg)
                if len(ing.pending.batch) >= batch_size:
                    ing.pending.take()  # as a flush does
            ing.pending.take()
            ing.intake.flush_now.clear()
            asyncio.run(ing.seen.write())
            held = _traced()
            # what each part gives back when it is dropped
            ing.rollup._open.clear()
            after_rollup = _traced()
            devs = ing.devices.index.values()
            for dev in devs:
                dev.state = NEW  # its duplicate window and last-seen time
            after_state = _traced()
            for place in {dev.place for dev in devs}:
                place.tags = ""
            after_tags = _traced()
        finally:
            tracemalloc.stop()
        ing.close()
    n = devices
    tags = (after_state - after_tags) / n
    parts = {"index": (loaded - before) / n - tags, "tags": tags,
             "state": (after_rollup - after_state) / n}
    total = (after_rollup - before) / n
    parts["other"] = total - sum(parts.values())
    return IngestMemory(devices, per_home, total, parts, (held - after_rollup) / n,
                        time.perf_counter() - t_start)


if __name__ == "__main__":
    m = measure_ingest_memory(int(sys.argv[1]) if len(sys.argv) > 1 else 300_000)
    print(f"{m.devices} devices, {m.per_home} per home: {m.bytes_per_device:.0f} B/device "
          f"(goal <= 256): " + ", ".join(f"{k} {v:.0f}" for k, v in m.parts.items()) +
          f"; rollup, one open minute, {m.rollup_bytes_per_device:.0f} B/device apart "
          f"({m.seconds:.0f} s)")
