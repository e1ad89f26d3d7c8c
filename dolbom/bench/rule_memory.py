"""Memory per home of the alerts service's rule state (DESIGN.md §7: ≤ 1 KB per home).

Builds a registry of ``homes`` homes with the usual six devices each, loads it the
way the alerts service does (``load_homes``, ``initial_state``, the deadline heap
and the device → home map), feeds every device one heartbeat, and measures what
that costs with ``tracemalloc``: configuration and state together, per home.
"""

from __future__ import annotations

import gc
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert

from dolbom.alerts import engine
from dolbom.alerts.service import load_homes
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import Device, Home, Resident, Site

KINDS = (("multisensor", "mains"), ("door", "battery"), ("button", "battery"),
         ("smoke", "battery"), ("bed", "mains"), ("plug", "mains"))


@dataclass(frozen=True)
class RuleMemory:
    homes: int
    config_bytes_per_home: float
    state_bytes_per_home: float
    total_bytes_per_home: float
    load_seconds: float
    heartbeat_us: float  # engine.observe(Seen) per message


def _fleet(url: str, homes: int) -> None:
    migrate(url)
    with session_factory(url).begin() as s:
        s.execute(insert(Site), [{"id": "s1", "name": "bench"}])
        s.execute(insert(Home), [{"id": f"h{i:06d}", "site_id": "s1", "label": "",
                                  "mode": "normal"} for i in range(homes)])
        s.execute(insert(Resident), [{"home_id": f"h{i:06d}", "name": "-", "wandering": False,
                                      "notes": ""} for i in range(homes)])
        s.execute(insert(Device), [
            {"id": f"{kind[:3]}-{i:06d}", "site_id": "s1", "home_id": f"h{i:06d}",
             "kind": kind, "power": power, "hb_s": 60, "mqtt_hash": "-"}
            for i in range(homes) for kind, power in KINDS])


def measure(homes: int = 20_000) -> RuleMemory:
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'fleet.db'}"
        _fleet(url, homes)
        gc.collect()
        tracemalloc.start()
        t0 = time.perf_counter()
        with session_factory(url)() as s:
            cfgs, device_home = load_homes(s)
        base = tracemalloc.get_traced_memory()[0]
        now = int(time.time() * 1000)
        states = {h: engine.initial_state(c, now) for h, c in cfgs.items()}
        deadlines: dict[str, int] = {}
        heap: list[tuple[int, str]] = []
        for h, c in cfgs.items():
            dl = engine.next_deadline(c, states[h])
            if dl is not None:
                deadlines[h] = dl
                heap.append((dl, h))
        load_s = time.perf_counter() - t0
        t1 = time.perf_counter()
        n = 0
        for dev, h in device_home.items():
            states[h], _ = engine.observe(cfgs[h], states[h], engine.Seen(dev, now + 1000))
            n += 1
        beat_us = (time.perf_counter() - t1) / max(n, 1) * 1e6
        gc.collect()
        total = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    return RuleMemory(homes, base / homes, (total - base) / homes, total / homes, load_s,
                      beat_us)


if __name__ == "__main__":
    m = measure()
    print(f"{m.homes} homes x 6 devices: config {m.config_bytes_per_home:.0f} B/home, "
          f"state+timers {m.state_bytes_per_home:.0f} B/home, "
          f"total {m.total_bytes_per_home:.0f} B/home (goal <= 1024); "
          f"heartbeat {m.heartbeat_us:.1f} us")
