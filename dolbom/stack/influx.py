"""A real InfluxDB 1.6 on loopback with auth on, bootstrapped before first use.

Users: an admin (created first, as InfluxDB 1.x allows only while no user
exists), a write-only ingest user and a read-only dashboard user. pprof and
usage reporting are off; every listener is bound to 127.0.0.1.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.influx.errors import QueryFailed
from dolbom.influx.influxql import ident, lit, rollup_1h_select
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
        try:
            self._bootstrap(users, database)
        except (QueryFailed, ValueError) as e:  # ValueError: an unsafe name
            raise StackError(str(e)) from e

    def _bootstrap(self, users: InfluxUsers, database: str) -> None:
        anon = InfluxHTTP(self.url)
        admin = InfluxHTTP(self.url, *users.admin)
        try:
            admin.query("SHOW DATABASES")
        except QueryFailed:
            # No users yet: InfluxDB 1.x lets exactly this statement through.
            anon.query(
                f"CREATE USER {ident(users.admin[0])} WITH PASSWORD {lit(users.admin[1])} "
                "WITH ALL PRIVILEGES", method="POST",
            )
        db = ident(database)
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
                admin.query(f"SET PASSWORD FOR {ident(name)} = {lit(pw)}", method="POST")
            else:
                admin.query(f"CREATE USER {ident(name)} WITH PASSWORD {lit(pw)}",
                            method="POST")
            admin.query(f"REVOKE ALL PRIVILEGES ON {db} FROM {ident(name)}", method="POST")
            admin.query(f"GRANT {right} ON {db} TO {ident(name)}", method="POST")
        # The 1-minute rollup per home is written by ingest (dolbom/ingest/rollup.py: a
        # continuous query over every device series cannot keep up at fleet scale); the
        # 1-hour one is a continuous query over those per-home points. Older stacks had
        # both as queries over raw: replaced here.
        existing = {row[0] for res in admin.query("SHOW CONTINUOUS QUERIES")
                    for series in res.get("series", []) if series.get("name") == database
                    for row in series.get("values", [])}
        for name in ("readings_1m", "readings_1h"):
            if name in existing:
                admin.query(f"DROP CONTINUOUS QUERY {ident(name)} ON {db}", method="POST")
        admin.query(
            f"CREATE CONTINUOUS QUERY {ident('readings_1h')} ON {db} "
            # every hour, the last two: a minute written after the hour ended still counts
            f"RESAMPLE FOR 2h BEGIN {rollup_1h_select(db)} END",
            method="POST",
        )

    def stop(self) -> None:
        proc.stop(self.proc, timeout=20)

    def kill(self) -> None:
        proc.kill9(self.proc)
