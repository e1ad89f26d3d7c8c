"""A real InfluxDB 1.6 on loopback with auth on, bootstrapped before first use.

Users: an admin (created first, as InfluxDB 1.x allows only while no user
exists), a write-only ingest user and a read-only dashboard user. pprof and
usage reporting are off; every listener is bound to 127.0.0.1.
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dolbom.protocol import READINGS
from dolbom.stack import proc
from dolbom.stack.errors import StackError

CONF = """\
# Written by dolbom.stack.
reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"

[meta]
  dir = "{dir}/meta"

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false
  # tsi1 keeps the series index on disk: memory stays flat as homes are added.
  index-version = "tsi1"

[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = true
  log-enabled = false
  pprof-enabled = false
  max-body-size = {max_body}

[monitor]
  store-enabled = false

[continuous_queries]
  enabled = true
  log-enabled = false

[subscriber]
  enabled = false
"""


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
        if self.user is None:
            return {}
        token = base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()
        return {"Authorization": f"Basic {token}"}

    def query(self, q: str, db: str | None = None, method: str = "GET",
              epoch: str = "ms", timeout: float = 30.0) -> list[dict[str, Any]]:
        """Run InfluxQL; return the list of results; raise StackError on any error."""
        params: dict[str, str] = {"q": q, "epoch": epoch}
        if db:
            params["db"] = db
        data = None
        url = f"{self.url}/query"
        if method == "POST":
            data = urllib.parse.urlencode(params).encode()
        else:
            url += "?" + urllib.parse.urlencode(params)
        req = urllib.request.Request(  # noqa: S310 - loopback
            url, data=data, method=method, headers=self._headers()
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:  # noqa: S310
                body = json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise StackError(f"InfluxDB {e.code}: {e.read().decode(errors='replace')}") from e
        results: list[dict[str, Any]] = body.get("results", [])
        for res in results:
            if "error" in res:
                raise StackError(f"InfluxQL error: {res['error']}")
        return results

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
        try:
            with urllib.request.urlopen(f"{self.url}/ping", timeout=2) as r:  # noqa: S310
                return bool(r.status == 204)
        except OSError:
            return False


class InfluxDB:
    def __init__(self, directory: Path, port: int | None = None,
                 max_body_size: int = 50_000_000) -> None:
        self.dir = directory
        self.max_body_size = max_body_size
        self.port = port or proc.free_port()
        self.rpc_port = proc.free_port()
        self.user = proc.service_user("influxdb")
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.dir / "influxd.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "influxdb.conf").write_text(
            CONF.format(dir=self.dir, port=self.port, rpc_port=self.rpc_port,
                        max_body=self.max_body_size)
        )
        proc.give_to(self.dir, self.user)

    def start(self, timeout: float = 30.0) -> None:
        if not (self.dir / "influxdb.conf").exists():
            self.prepare()
        exe = proc.which("influxd")
        self.proc = proc.start([exe, "-config", str(self.dir / "influxdb.conf")], self.log,
                               self.user)
        proc.wait_port(self.port, self.proc, timeout, "influxd", self.log)
        client = InfluxHTTP(self.url)
        proc.wait_until(client.ping, timeout, "InfluxDB /ping")

    def bootstrap(self, users: InfluxUsers, database: str) -> None:
        """Create admin (first), database, retention, and least-privilege users. Idempotent."""
        anon = InfluxHTTP(self.url)
        admin = InfluxHTTP(self.url, *users.admin)
        try:
            admin.query("SHOW DATABASES")
        except StackError:
            # No users yet: InfluxDB 1.x lets exactly this statement through.
            anon.query(
                f"CREATE USER {_ident(users.admin[0])} WITH PASSWORD {_lit(users.admin[1])} "
                "WITH ALL PRIVILEGES", method="POST",
            )
        db = _ident(database)
        admin.query(f"CREATE DATABASE {db}", method="POST")
        # Raw data 90 days (DESIGN.md §4); rollups kept 2 years.
        admin.query(f'CREATE RETENTION POLICY "raw" ON {db} DURATION 90d REPLICATION 1 DEFAULT',
                    method="POST")
        admin.query(f'ALTER RETENTION POLICY "raw" ON {db} DURATION 90d REPLICATION 1 DEFAULT',
                    method="POST")
        admin.query(f'CREATE RETENTION POLICY "rollup" ON {db} DURATION 104w REPLICATION 1',
                    method="POST")
        for (name, pw), right in ((users.ingest, "WRITE"), (users.dashboard, "READ")):
            existing = {r["user"] for r in admin.rows("SHOW USERS", database)}
            if name in existing:
                admin.query(f"SET PASSWORD FOR {_ident(name)} = {_lit(pw)}", method="POST")
            else:
                admin.query(f"CREATE USER {_ident(name)} WITH PASSWORD {_lit(pw)}",
                            method="POST")
            admin.query(f"REVOKE ALL PRIVILEGES ON {db} FROM {_ident(name)}", method="POST")
            admin.query(f"GRANT {right} ON {db} TO {_ident(name)}", method="POST")
        # The 1-minute rollup per home is written by ingest (dolbom/ingest/rollup.py: a
        # continuous query over every device series cannot keep up at fleet scale); the
        # 1-hour one is a continuous query over those per-home points. Older stacks had
        # both as queries over raw: replaced here.
        existing = {row[0] for res in admin.query("SHOW CONTINUOUS QUERIES")
                    for series in res.get("series", []) if series.get("name") == database
                    for row in series.get("values", [])}
        for name in ("readings_1m", "readings_1h"):
            if name in existing:
                admin.query(f"DROP CONTINUOUS QUERY {_ident(name)} ON {db}", method="POST")
        admin.query(
            f"CREATE CONTINUOUS QUERY {_ident('readings_1h')} ON {db} "
            # every hour, the last two: a minute written after the hour ended still counts
            f"RESAMPLE FOR 2h BEGIN {rollup_1h_select(db)} END",
            method="POST",
        )

    def stop(self) -> None:
        proc.stop(self.proc, timeout=20)

    def kill(self) -> None:
        proc.kill9(self.proc)


def rollup_1h_select(db: str, where: str = "") -> str:
    """The 1-hour rollup: hourly means of the per-home 1-minute rollups (``where``: a
    ``WHERE`` clause, to run it by hand over a past range)."""
    fields = ", ".join(f'mean("{f}") AS "{f}"' for f in sorted(READINGS))
    return (f'SELECT {fields}, sum("samples") AS "samples" '  # noqa: S608 - fixed names
            f'INTO {db}."rollup"."reading_1h" FROM {db}."rollup"."reading_1m" {where} '
            "GROUP BY time(1h), *")


def _ident(name: str) -> str:
    if not name.replace("_", "").replace("-", "").isalnum():
        raise StackError(f"unsafe InfluxDB identifier {name!r}")
    return f'"{name}"'


def _lit(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
