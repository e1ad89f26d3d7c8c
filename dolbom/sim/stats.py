"""Live counters of a running simulator, for the demo's terminal display.

The runner updates one ``SimStats`` in place (single event loop, no locks);
readers take ``snapshot()``, a frozen copy that is safe to keep and print.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any


@dataclass(frozen=True, slots=True)
class SimStatsSnapshot:
    devices: int
    connected: int
    dead: int  # devices stopped by ``device_death``
    sent: MappingProxyType[str, int]  # by message name: status, telemetry, motion, button, ...
    life_safety_pending: int  # events in outboxes awaiting ack
    life_safety_resent: int
    life_safety_acked: int
    max_tries: int  # most sends of any event still pending
    dropped: int  # telemetry/activity dropped from full queues while offline
    reconnects: int
    connect_failures: int
    incidents: tuple[tuple[str, str], ...]  # (home, incident) active now
    sim_time: str  # "day 0 07:31"

    @property
    def sent_total(self) -> int:
        return sum(self.sent.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "devices": self.devices, "connected": self.connected, "dead": self.dead,
            "sent": dict(self.sent), "life_safety_pending": self.life_safety_pending,
            "life_safety_resent": self.life_safety_resent,
            "life_safety_acked": self.life_safety_acked, "max_tries": self.max_tries,
            "dropped": self.dropped, "reconnects": self.reconnects,
            "connect_failures": self.connect_failures,
            "incidents": [list(i) for i in self.incidents], "sim_time": self.sim_time,
        }

    def line(self) -> str:
        """One terminal line."""
        inc = ", ".join(f"{h}:{k}" for h, k in self.incidents) or "none"
        return (f"{self.sim_time}  devices {self.connected}/{self.devices} connected"
                f" ({self.dead} dead)  sent {self.sent_total}"
                f"  life-safety pending {self.life_safety_pending} (max tries {self.max_tries},"
                f" acked {self.life_safety_acked})  dropped {self.dropped}  incidents {inc}")


@dataclass
class SimStats:
    devices: int = 0
    connected: int = 0
    dead: int = 0
    sent: Counter[str] = field(default_factory=Counter)
    life_safety_pending: int = 0
    life_safety_resent: int = 0
    life_safety_acked: int = 0
    max_tries: int = 0
    dropped: int = 0
    reconnects: int = 0
    connect_failures: int = 0
    incidents: tuple[tuple[str, str], ...] = ()
    sim_time: str = ""

    def snapshot(self) -> SimStatsSnapshot:
        return SimStatsSnapshot(
            devices=self.devices, connected=self.connected, dead=self.dead,
            sent=MappingProxyType(dict(self.sent)),
            life_safety_pending=self.life_safety_pending,
            life_safety_resent=self.life_safety_resent,
            life_safety_acked=self.life_safety_acked, max_tries=self.max_tries,
            dropped=self.dropped, reconnects=self.reconnects,
            connect_failures=self.connect_failures, incidents=self.incidents,
            sim_time=self.sim_time,
        )
