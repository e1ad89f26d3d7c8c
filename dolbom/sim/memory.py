"""A simulated site's device memory (boot counters, batteries) across runs: kept in
``<state dir>/<site>.devices.json``, written atomically."""

from __future__ import annotations

from pathlib import Path

import orjson

from dolbom.files import write_atomic
from dolbom.sim.engine import DeviceMemory
from dolbom.sim.errors import StateError


def memory_path(state_dir: Path, site: str) -> Path:
    return state_dir / f"{site}.devices.json"


def load_memory(path: Path) -> dict[str, DeviceMemory]:
    try:
        doc = orjson.loads(path.read_bytes())
        return {dev: DeviceMemory(int(m["boot"]), m.get("battery_pct"))
                for dev, m in doc["devices"].items()}
    except FileNotFoundError:
        return {}
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        # Losing boot counters would make new messages look like duplicates of
        # old ones ((dev, boot, seq) dedup): refuse rather than guess.
        raise StateError(f"device memory {path} is corrupt ({e}); move it away "
                            "and provision a new site") from None


def save_memory(path: Path, memory: dict[str, DeviceMemory]) -> None:
    doc = {"devices": {dev: {"boot": m.boot, "battery_pct": m.battery_pct}
                       for dev, m in memory.items()}}
    write_atomic(path, orjson.dumps(doc))
