"""Memory per home of the alerts service's rules (DESIGN.md §7: ≤ 1 KB per home).

Builds a registry of ``homes`` homes with the usual six devices each and has an
``AlertService`` take it in as it does at start-up (``load_homes``, then ``_adopt``: the
initial rule states and the deadline heap), feeds every device one heartbeat through
``AlertService.observe``, and measures with ``tracemalloc`` what the service then holds,
per home: the configuration (``load_homes``: configurations and the device → home map)
and the rule state with its timers. The set of homes whose state waits to be saved
(``_dirty``, emptied at every flush) is counted apart. Three more heartbeats per device,
without ``tracemalloc``, time the service's rule work per heartbeat (the best of the
three rounds), and a lookup of
every device in the service's device → home map (with a fresh ``str`` per device, as
the stream path parses one out of each topic) times the stream path's routing.
"""

from __future__ import annotations

import gc
import random
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import insert

from dolbom.alerts import engine
from dolbom.alerts.homes import load_homes
from dolbom.alerts.service import AlertService
from dolbom.alerts.settings import AlertOptions, AlertsSettings
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import Device, Home, Resident, Site

KINDS = (("multisensor", "mains"), ("door", "battery"), ("button", "battery"),
         ("smoke", "battery"), ("bed", "mains"), ("plug", "mains"))


@dataclass(frozen=True)
class RuleMemory:
    homes: int
    config_bytes_per_home: float  # configurations and the device → home map
    state_bytes_per_home: float  # rule states, the deadline heap and map
    total_bytes_per_home: float  # the two above
    dirty_bytes_per_home: float  # the save queue, apart (not in total)
    load_seconds: float
    heartbeat_us: float  # AlertService.observe(Seen) per message, without tracemalloc
    lookup_ns: float  # device → home as on the stream path (AlertService.device_home.config)


def seed_fleet(url: str, homes: int) -> None:
    """A registry of ``homes`` homes, each with a resident and the six usual devices."""
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


def _heartbeats(svc: AlertService, beats: Iterable[tuple[str, str]], at_ms: int) -> int:
    n = 0
    for home, dev in beats:
        svc.observe(home, engine.Seen(dev, at_ms))
        n += 1
    return n


def _every_device(svc: AlertService) -> Iterator[tuple[str, str]]:
    """(home, device) of every device, one home at a time (no list of them all: the
    first round runs under tracemalloc)."""
    for cfg in list(svc.homes.values()):
        for dev in cfg.ids:
            yield cfg.home, dev


def measure(homes: int = 20_000) -> RuleMemory:
    now_ms = int(time.time() * 1000)
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'fleet.db'}"
        seed_fleet(url, homes)
        svc = AlertService(AlertsSettings(database_url=url, alerts=AlertOptions(metrics_port=0)),
                           clock=lambda: now_ms / 1000, channels={})
        gc.collect()
        tracemalloc.start()
        t0 = time.perf_counter()
        with svc.sessions() as s:
            cfgs, device_home = load_homes(s)
        gc.collect()
        config = tracemalloc.get_traced_memory()[0]
        svc._adopt(cfgs, device_home, {}, {})  # as AlertService.load does
        load_s = time.perf_counter() - t0
        _heartbeats(svc, _every_device(svc), now_ms + 1000)
        del cfgs, device_home
        gc.collect()
        total = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        dirty = sys.getsizeof(svc._dirty)  # its table; the home ids are the service's own
        beats = list(_every_device(svc))
        gc.collect()  # these 120,000 new objects: no full collection inside the timed loop
        beat_us = float("inf")
        for second in (2, 3, 4):  # best of three: the first rounds after the load vary
            t1 = time.perf_counter()
            n = _heartbeats(svc, beats, now_ms + second * 1000)
            beat_us = min(beat_us, (time.perf_counter() - t1) / max(n, 1) * 1e6)
        lookup_ns = _lookups(svc, [dev for _, dev in beats])
    return RuleMemory(homes, config / homes, (total - config - dirty) / homes,
                      (total - dirty) / homes, dirty / homes, load_s, beat_us, lookup_ns)


def _lookups(svc: AlertService, devices: list[str]) -> float:
    """ns per device → home lookup, in a shuffled order, best of three rounds."""
    random.Random(7).shuffle(devices)
    best = float("inf")
    for _ in range(3):
        fresh = [(dev + ".")[:-1] for dev in devices]  # new str objects: hash not cached
        find = svc.device_home.config  # as the stream (dolbom.alerts.stream.Stream.on_message) does
        t0 = time.perf_counter()
        for dev in fresh:
            find(dev)
        best = min(best, time.perf_counter() - t0)
    return best / max(len(devices), 1) * 1e9


if __name__ == "__main__":
    m = measure()
    print(f"{m.homes} homes x 6 devices: config {m.config_bytes_per_home:.0f} B/home, "
          f"state+timers {m.state_bytes_per_home:.0f} B/home, "
          f"total {m.total_bytes_per_home:.0f} B/home (goal <= 1024); "
          f"save queue {m.dirty_bytes_per_home:.0f} B/home; "
          f"heartbeat {m.heartbeat_us:.1f} us; device lookup {m.lookup_ns:.0f} ns")
