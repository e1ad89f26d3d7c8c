"""What the gateway is doing: its snapshot (the CLI, tests) and its own retained status
on the central broker (its heartbeat, with the queue's figures; DESIGN.md §3)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from dolbom import __version__


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the gateway is doing, for its status, the CLI and tests."""

    local_up: bool
    central_up: bool
    depth: int
    life_safety_pending: int
    bytes: int
    oldest_s: float | None
    over_bound: bool
    counters: dict[str, int]
    refused: dict[str, int]


def status_payload(snap: Snapshot, state: str, *, boot: int, heartbeat_s: float,
                   write_errors: int, children: int) -> bytes:
    c = snap.counters
    d: dict[str, Any] = {
        "state": state, "boot": boot, "fw": __version__, "kind": "gateway",
        "hb": int(heartbeat_s),
        # The node's outbox figures (DESIGN.md §3 status "ob"): life-safety events
        # waiting for their ack; a gateway never evicts one.
        "ob": {"depth": snap.life_safety_pending, "evicted": 0, "merged": 0,
               "werr": write_errors},
        "q": {"depth": snap.depth, "bytes": snap.bytes,
              "oldest_s": None if snap.oldest_s is None else round(snap.oldest_s, 1),
              "over_bound": snap.over_bound,
              "evicted": c["evicted_telemetry"] + c["evicted_status"]
              + c["evicted_events"],
              "evicted_telemetry": c["evicted_telemetry"],
              "evicted_status": c["evicted_status"],
              "evicted_events": c["evicted_events"],
              "forwarded": c["forwarded"], "acked": c["acked"],
              "refused": sum(snap.refused.values())},  # since this boot
        "children": children,
    }
    return orjson.dumps(d)
