"""Grafana's InfluxDB user must be read-only and see only its own database (DESIGN.md §6,
TESTPLAN S-09). Checked against InfluxDB itself before a datasource is pushed.

InfluxDB 1.x grants READ / WRITE per database, not per tag, so a centre's team is
scoped to its site by giving its Grafana a user with READ on a database that holds
that site only (docs/dashboards.md, "Privacy"); a ``site`` filter in a query or a
variable is no boundary, because anyone who can open Explore can send any query.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

from dolbom.dashboards.errors import InfluxUnreachable, NotReadOnly
from dolbom.influx.admin import InfluxHTTP
from dolbom.influx.errors import QueryFailed
from dolbom.influx.query import basic_auth


def _write_status(url: str, user: str, password: str, database: str) -> int:
    """The status of an empty write: 403 when the user may not write (nothing is written
    either way: the body holds no point)."""
    q = urllib.parse.urlencode({"db": database})
    req = urllib.request.Request(  # noqa: S310 - the InfluxDB we were given
        f"{url.rstrip('/')}/write?{q}", data=b"", method="POST",
        headers=basic_auth(user, password))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code


def problems(url: str, user: str, password: str, database: str) -> list[str]:
    """What is wrong with these credentials for Grafana; empty when they are right."""
    client = InfluxHTTP(url, user, password)
    found: list[str] = []
    try:
        client.query("SHOW USERS")
        found.append(f"{user} is an InfluxDB admin")
    except QueryFailed:
        pass  # as it should be: only admins list users
    status = _write_status(url, user, password, database)
    if status != 403:
        found.append(f"{user} may write to {database} (empty write answered {status})")
    try:
        client.query("SHOW MEASUREMENTS LIMIT 1", database)
    except QueryFailed as e:
        found.append(f"{user} cannot read {database}: {e}")
    try:
        others = sorted(str(r["name"]) for r in client.rows("SHOW DATABASES", database)
                        if r["name"] not in (database, "_internal"))
    except QueryFailed:
        others = []
    if others:
        found.append(f"{user} can also see {', '.join(others)}")
    return found


def require_read_only(url: str, user: str, password: str, database: str) -> None:
    try:
        found = problems(url, user, password, database)
    except OSError as e:  # refused, unresolvable, timed out (URLError is an OSError)
        raise InfluxUnreachable(f"cannot reach InfluxDB at {url}: {e}") from e
    if found:
        raise NotReadOnly("; ".join(found))
