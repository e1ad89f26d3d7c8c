"""Queries: the resident views' reader with bound parameters only (a hostile value is data,
never InfluxQL), the admin client's parameters and writes, and the InfluxQL helpers."""

from __future__ import annotations

import secrets
import string
import time

import pytest

from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.influx.errors import QueryFailed
from dolbom.influx.influxql import ident, lit, safe_name
from dolbom.influx.lineproto import line
from dolbom.influx.query import Q_ACTIVITY, Q_LAST_EVENT, Q_READINGS, InfluxReader
from dolbom.settings import InfluxSettings
from dolbom.stack.influx import InfluxDB


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.mark.integration
def test_hostile_home_value_is_bound_not_spliced(influx: InfluxDB,
                                                 influx_users: InfluxUsers) -> None:
    """A home value with quotes and InfluxQL in it matches nothing and breaks nothing."""
    home = "h-" + secrets.token_hex(4)
    InfluxHTTP(influx.url, *influx_users.ingest).write(
        [line("event", {"site": "s1", "home": home, "device": "dx", "type": "motion"},
              {"seq": 1, "boot": 1, "hist": False}, now_ms())], "care")
    user, pw = influx_users.dashboard
    reader = InfluxReader(InfluxSettings(url=influx.url, username=user, password=pw))
    assert reader.last_event_per_device(home) != {}
    assert reader.last_event_per_device(f"{home}' OR home =~ /.*/ --") == {}
    assert reader.last_event_per_device("x\" ; DROP DATABASE \"care") == {}
    assert reader.last_event_per_device(home) != {}  # the database is still there


@pytest.mark.integration
def test_admin_client_binds_parameters_and_reports_refusals(
        influx: InfluxDB, influx_users: InfluxUsers) -> None:
    """InfluxHTTP passes bound parameters; a refused write or statement is QueryFailed."""
    site = "q-" + secrets.token_hex(4)
    admin = InfluxHTTP(influx.url, *influx_users.admin)
    admin.write([line("reading", {"site": site, "device": "d1"}, {"power_w": 1.5},
                      now_ms())], "care")
    q = 'SELECT count("power_w") FROM "reading" WHERE "site" = $site'
    assert admin.query(q, "care", params={"site": site})[0]["series"][0]["values"][0][1] == 1
    assert "series" not in admin.query(q, "care", params={"site": site + "' OR 1=1"})[0]
    with pytest.raises(QueryFailed) as refused:
        InfluxHTTP(influx.url, *influx_users.dashboard).write([b"reading power_w=1 1"], "care")
    assert refused.value.status == 403
    with pytest.raises(QueryFailed, match=r"^InfluxDB 400: .*error parsing query"):
        admin.query('SELECT * FROM "reading" WHERE', "care")
    with pytest.raises(QueryFailed, match=r"^InfluxQL error: database not found") as failed:
        admin.query('SELECT * FROM "reading"', "no_such_db")
    assert failed.value.status is None


def test_queries_are_constants_with_bound_parameters() -> None:
    """No query template has a slot for user input other than allow-listed names."""
    for q in (Q_READINGS, Q_ACTIVITY, Q_LAST_EVENT):
        assert "$home" in q
        slots = [name for _, name, _, _ in string.Formatter().parse(q) if name]
        assert set(slots) <= {"field", "interval", "limit"}


@pytest.mark.parametrize("name", ["care", "care_s001", "readings-1h"])
def test_safe_names_are_quoted(name: str) -> None:
    """A safe name becomes a double-quoted identifier."""
    assert ident(name) == f'"{name}"' and safe_name(name) == name


@pytest.mark.parametrize("name", ['care"; DROP DATABASE "x', "a b", "", "x.y"])
def test_unsafe_names_are_refused(name: str) -> None:
    """A name with quotes, spaces or anything but letters, digits, _ and - is refused."""
    with pytest.raises(ValueError, match="unsafe"):
        ident(name)


@pytest.mark.parametrize(("value", "quoted"), [
    ("pw", "'pw'"), ("it's", "'it\\'s'"), ("a\\b", "'a\\\\b'"), ("\\'", "'\\\\\\''"),
])
def test_literals_are_escaped(value: str, quoted: str) -> None:
    """A string literal keeps its quote and backslashes inside the quotes."""
    assert lit(value) == quoted
