"""The alerts service's restart at ``homes`` homes (DESIGN.md §7: restart to consuming
≤ 10 s at 300,000 homes).

    python -m dolbom.bench.restart [HOMES]   (300,000 by default)

Builds a registry (SQLite, a temporary directory) of ``homes`` homes with the usual six
devices and a resident each, has an ``AlertService`` take it in and save every home's
rule state (as a running service has), and records a last-seen time for every device,
as ingest does while the rules are down. Then it starts a fresh Python process that
does what ``dolbom alerts run`` does before it takes messages: import the service,
build it, and load the registry, the saved states and the last-seen times
(``RegistrySync.load``). The figure is from that process's start (``Popen``) to the load
done, with the load's own share beside it; ``bench-alerts`` measures the rest of a
start (the broker sessions, tens of ms) on a live stack.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

NOW_S = 1_800_000_000.0  # the saved states' time; the restart comes a minute later


@dataclass(frozen=True)
class Restart:
    homes: int
    seconds: float  # process start -> registry, states and last-seen loaded
    import_seconds: float  # of which: Python, the service's modules
    load_seconds: float  # of which: RegistrySync.load
    prepare_seconds: float  # building the registry and the saved states (not the figure)


def _prepare(url: str, homes: int) -> None:
    from sqlalchemy import update

    from dolbom.alerts.service import AlertService
    from dolbom.alerts.settings import AlertOptions, AlertsSettings
    from dolbom.bench.rule_memory import seed_fleet
    from dolbom.registry.models import Device

    seed_fleet(url, homes)
    svc = AlertService(AlertsSettings(database_url=url, alerts=AlertOptions(metrics_port=0)),
                       clock=lambda: NOW_S, channels={})

    async def first_run() -> None:
        await svc.registry.load()
        await svc.saver.flush()

    asyncio.run(first_run())
    with svc.sessions.begin() as s:  # heard while the rules were down
        s.execute(update(Device).values(last_seen_at=datetime.fromtimestamp(NOW_S + 30, UTC)))


def _child(url: str) -> None:
    """The restarted service, up to taking messages; prints its figures as JSON."""
    t0 = time.perf_counter()
    from dolbom.alerts.service import AlertService
    from dolbom.alerts.settings import AlertOptions, AlertsSettings

    svc = AlertService(AlertsSettings(database_url=url, alerts=AlertOptions(metrics_port=0)),
                       clock=lambda: NOW_S + 60, channels={})
    t1 = time.perf_counter()
    asyncio.run(svc.registry.load())
    t2 = time.perf_counter()
    print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "homes": len(svc.states)}),
          flush=True)


def measure(homes: int = 300_000) -> Restart:
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'fleet.db'}"
        t = time.perf_counter()
        _prepare(url, homes)
        prepared = time.perf_counter() - t
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "dolbom.bench.restart", "--child", url],
                             check=True, capture_output=True, text=True,
                             env={**os.environ, "PYTHONHASHSEED": "random"})
        took = time.perf_counter() - start
        got = json.loads(out.stdout.strip().splitlines()[-1])
        if got["homes"] != homes:
            raise RuntimeError(f"the restarted service took {got['homes']} homes, not {homes}")
    return Restart(homes, took, got["import_s"], got["load_s"], prepared)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--child"]:
        _child(argv[1])
        return
    homes = int(argv[0]) if argv else 300_000
    print(f"building a registry of {homes} homes with saved rule states ...", flush=True)
    r = measure(homes)
    print(f"{r.homes} homes: restart to ready for messages {r.seconds:.1f} s (goal <= 10 s): "
          f"imports {r.import_seconds:.1f} s, registry + states + last-seen "
          f"{r.load_seconds:.1f} s (prepared in {r.prepare_seconds:.0f} s)")


if __name__ == "__main__":
    main(sys.argv[1:])
