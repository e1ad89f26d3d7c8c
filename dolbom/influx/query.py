"""Querying InfluxDB 1.x over its v1 ``/query`` endpoint (blocking: callers run in a
thread pool or at set-up), and the read-only access of resident views (DESIGN.md §4).

Every resident-view query is a constant string: user input reaches InfluxDB only as
InfluxDB 1.x bound parameters (the ``params`` JSON: ``$home``, ``$since``, ``$until``), and
the two things InfluxQL cannot bind, a field name and a GROUP BY interval, are picked
from allow-lists (``READING_FIELDS``, ``INTERVALS``) and checked again here. The user is
the read-only dashboard user (``DOLBOM_API__INFLUX__*``).
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from dolbom.influx.errors import QueryFailed
from dolbom.protocol import READINGS
from dolbom.settings import InfluxSettings

READING_FIELDS: tuple[str, ...] = tuple(sorted(READINGS))
# GROUP BY intervals offered to clients, and the longest range each may cover (points
# per series stay at most a few thousand).
INTERVALS: dict[str, int] = {"1m": 2 * 86_400, "5m": 7 * 86_400, "15m": 31 * 86_400,
                             "1h": 92 * 86_400, "1d": 730 * 86_400}
MAX_EVENTS = 1000

Q_READINGS = ('SELECT mean("{field}") AS "v" FROM "reading" WHERE "home" = $home '
              "AND time >= $since AND time < $until GROUP BY time({interval}), \"device\" "
              "fill(none)")
Q_ACTIVITY = ('SELECT "seq", "val", "type", "device" FROM "event" WHERE "home" = $home '
              "AND time >= $since AND time < $until ORDER BY time DESC LIMIT {limit}")
Q_LAST_EVENT = 'SELECT last("seq") FROM "event" WHERE "home" = $home GROUP BY "device"'


def basic_auth(user: str | None, password: str | None) -> dict[str, str]:
    """HTTP Basic auth headers (none without a user)."""
    if user is None:
        return {}
    token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def run_query(url: str, q: str, *, db: str | None = None, params: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None, method: str = "POST", epoch: str = "ms",
              timeout: float = 30.0) -> list[dict[str, Any]]:
    """Run InfluxQL (``params``: its bound parameters); return the list of results.

    QueryFailed on an HTTP error status or an InfluxQL error; OSError when InfluxDB
    cannot be reached, ValueError when its answer is not JSON.
    """
    form: dict[str, str] = {"q": q, "epoch": epoch}
    if db:
        form["db"] = db
    if params is not None:
        form["params"] = json.dumps(params)
    encoded = urllib.parse.urlencode(form)
    target, data = f"{url}/query", None
    if method == "POST":
        data = encoded.encode()
    else:
        target += "?" + encoded
    req = urllib.request.Request(target, data=data, method=method,  # noqa: S310 - http(s)
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
            body = json.loads(r.read())
    except urllib.error.HTTPError as e:
        raise QueryFailed(f"InfluxDB {e.code}: {e.read().decode(errors='replace')}",
                          e.code) from e
    results: list[dict[str, Any]] = body.get("results", [])
    for res in results:
        if "error" in res:
            raise QueryFailed(f"InfluxQL error: {res['error']}")
    return results


def ping(url: str) -> bool:
    """True when InfluxDB answers ``/ping``."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:  # noqa: S310
            return bool(r.status == 204)
    except OSError:
        return False


class InfluxUnavailable(Exception):
    """InfluxDB did not answer, or answered with an error: charts wait, alarms do not."""


@dataclass(frozen=True, slots=True)
class Row:
    time_ms: int
    tags: dict[str, str]
    values: dict[str, Any]


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class InfluxReader:
    """A tiny blocking client of the v1 ``/query`` endpoint (routes run in a thread pool)."""

    def __init__(self, settings: InfluxSettings) -> None:
        self.url = settings.url.rstrip("/")
        self.database = settings.database
        self.timeout = settings.timeout_s
        self._headers = settings.auth_headers()

    def query(self, q: str, params: dict[str, Any]) -> list[Row]:
        try:
            results = run_query(self.url, q, db=self.database, params=params,
                                headers=self._headers, timeout=self.timeout)
        except QueryFailed as e:
            if e.status is None:
                raise InfluxUnavailable(str(e)) from None
            raise InfluxUnavailable(f"InfluxDB answered {e.status}") from None
        except (OSError, ValueError) as e:
            raise InfluxUnavailable(f"InfluxDB unreachable: {type(e).__name__}") from None
        rows: list[Row] = []
        for res in results:
            for s in res.get("series", []):
                cols = s["columns"]
                for v in s["values"]:
                    d = dict(zip(cols, v, strict=True))
                    rows.append(Row(int(d.pop("time")), dict(s.get("tags") or {}), d))
        return rows

    def readings(self, home: str, field: str, interval: str, since: datetime,
                 until: datetime) -> list[Row]:
        if field not in READING_FIELDS or interval not in INTERVALS:
            raise ValueError("field or interval not allowed")  # the route checked already
        q = Q_READINGS.format(field=field, interval=interval)
        return self.query(q, {"home": home, "since": rfc3339(since), "until": rfc3339(until)})

    def activity(self, home: str, since: datetime, until: datetime, limit: int) -> list[Row]:
        q = Q_ACTIVITY.format(limit=max(1, min(int(limit), MAX_EVENTS)))
        return self.query(q, {"home": home, "since": rfc3339(since), "until": rfc3339(until)})

    def last_event_per_device(self, home: str) -> dict[str, int]:
        return {r.tags.get("device", ""): r.time_ms
                for r in self.query(Q_LAST_EVENT, {"home": home})}

    def ping(self) -> bool:
        return ping(self.url)
