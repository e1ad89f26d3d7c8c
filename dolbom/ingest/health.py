"""What ingest shows of itself: the snapshot (the demo's display, tests, ``/health``) and
the metrics endpoint."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from dolbom.ingest.metrics import Counts
from dolbom.ingest.settings import IngestSettings
from dolbom.metrics_http import serve_metrics


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Counts for the demo's terminal display and for tests."""

    mqtt_connected: bool
    influx_up: bool
    messages: int
    points_written: int
    dead_letters: int
    duplicates: int
    devices_seen: int
    spool_files: int
    pending: int
    life_safety_events: int


async def serve_health(settings: IngestSettings, counts: Counts,
                       snapshot: Callable[[], Snapshot]) -> web.AppRunner | None:
    """``/metrics`` and ``/health`` (healthy while connected to the broker); None when
    ``metrics_port`` is 0."""
    def health() -> tuple[bool, dict[str, object]]:
        snap = snapshot()
        return snap.mqtt_connected, dataclasses.asdict(snap)

    return await serve_metrics(settings.metrics_host, settings.metrics_port,
                               counts.metrics.registry, health, before_scrape=counts.sync)
