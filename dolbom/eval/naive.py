"""Naive inactivity timers: the baseline the rules are compared with.

"No activity event from any sensor of the home for H hours" (activity: a
``motion``, ``door``, ``bed`` or ``presence`` event), on the receive clock, as a
plain timer would run it: no sleep window, no modes, no idea of a silent sensor.
One alert per silence, raised when the silence reaches H hours, to the care
worker; written in the ``alerts.jsonl`` format so the same scorer judges it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

HOUR_MS = 3_600_000
ACTIVITY = frozenset({"motion", "door", "bed", "presence"})


def device_homes(homes_doc: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Device id -> (site, home) of a ``homes.json`` document."""
    return {str(d["id"]): (str(h["site"]), str(h["home"]))
            for h in homes_doc["homes"] for d in h["devices"]}


def _alert(t: int, site: str, home: str, rule: str, hours: float) -> dict[str, Any]:
    return {"t_ms": t, "site": site, "home": home, "rule": rule, "class": "welfare",
            "priority": "medium", "action": "raise", "to": ["care_worker"],
            "reasons": [f"no activity event for {hours:g} h"]}


def naive_alerts(devices: dict[str, tuple[str, str]],
                 messages: Iterable[tuple[int, str, Any]], hours: float,
                 end_ms: int) -> list[dict[str, Any]]:
    """The alerts of an H-hour timer over (rx_ms, topic, payload) in receive order.

    A home's clock starts at its first message; the run ends at ``end_ms``.
    """
    limit = round(hours * HOUR_MS)
    rule = f"naive_{hours:g}h"
    last: dict[str, int] = {}  # home -> rx of the last activity (or first message)
    site_of: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for rx, topic, _payload in messages:
        parts = topic.split("/")
        if len(parts) < 4:
            continue
        where = devices.get(parts[3])
        if where is None:
            continue
        site, home = where
        if home not in last:
            last[home] = rx
            site_of[home] = site
        if len(parts) == 6 and parts[4] == "event" and parts[5] in ACTIVITY:
            if rx - last[home] >= limit:
                out.append(_alert(last[home] + limit, site, home, rule, hours))
                out.append({**_alert(rx, site, home, rule, hours), "action": "resolve",
                            "reasons": ["activity"]})
            last[home] = rx
    for home, t in last.items():
        if end_ms - t >= limit:
            out.append(_alert(t + limit, site_of[home], home, rule, hours))
    out.sort(key=lambda a: (a["t_ms"], a["home"]))
    return out
