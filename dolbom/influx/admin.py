"""InfluxDB's HTTP admin client for set-up, tools and tests (the services write with
``dolbom.influx.writer`` and read with ``dolbom.influx.query.InfluxReader``)."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from dolbom.influx.errors import QueryFailed
from dolbom.influx.query import basic_auth, ping, run_query


@dataclass(frozen=True)
class InfluxUsers:
    admin: tuple[str, str]
    ingest: tuple[str, str]
    dashboard: tuple[str, str]


class InfluxHTTP:
    """Tiny blocking client for set-up and tests (the service uses aiohttp)."""

    def __init__(self, url: str, user: str | None = None, password: str | None = None) -> None:
        self.url, self.user, self.password = url.rstrip("/"), user, password

    def _headers(self) -> dict[str, str]:
        return basic_auth(self.user, self.password)

    def query(self, q: str, db: str | None = None, method: str = "GET",
              epoch: str = "ms", timeout: float = 30.0, params: dict[str, Any] | None = None
              ) -> list[dict[str, Any]]:
        """Run InfluxQL (``params``: its bound parameters); return the list of results;
        raise QueryFailed on any error InfluxDB answers."""
        return run_query(self.url, q, db=db, params=params,
                         headers=self._headers(), method=method,
                         epoch=epoch, timeout=timeout)

    def write(self, lines: Sequence[bytes], db: str, rp: str | None = None,
              timeout: float = 30.0) -> None:
        """Write line protocol (ms precision) in one blocking request; any answer but 204
        raises QueryFailed (tools and tests: the services write with ``InfluxWriter``)."""
        form = {"db": db, "precision": "ms"} | ({"rp": rp} if rp else {})
        req = urllib.request.Request(  # noqa: S310 - http(s)
            f"{self.url}/write?{urllib.parse.urlencode(form)}", data=b"\n".join(lines),
            method="POST", headers=self._headers())
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
                r.read()
        except urllib.error.HTTPError as e:
            raise QueryFailed(f"InfluxDB {e.code}: {e.read().decode(errors='replace')}",
                              e.code) from e

    def count(self, q: str, db: str) -> int:
        """First value of the first row of a COUNT query, 0 if no rows."""
        res = self.query(q, db)
        series = res[0].get("series") if res else None
        if not series:
            return 0
        return int(series[0]["values"][0][1])

    def rows(self, q: str, db: str) -> list[dict[str, Any]]:
        """All rows of all series as dicts (tags merged in)."""
        out: list[dict[str, Any]] = []
        for res in self.query(q, db):
            for s in res.get("series", []):
                for v in s["values"]:
                    row = dict(zip(s["columns"], v, strict=True))
                    row.update(s.get("tags") or {})
                    out.append(row)
        return out

    def ping(self) -> bool:
        return ping(self.url)
