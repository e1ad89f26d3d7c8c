"""Grafana reads InfluxDB through a read-only user that sees only its own database
(DESIGN.md §6, TESTPLAN S-09), checked on the real InfluxDB 1.6."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

from dolbom.dashboards import catalogue as cat
from dolbom.dashboards import model
from dolbom.dashboards.errors import NotReadOnly
from dolbom.dashboards.expand import expand
from dolbom.dashboards.readonly import problems, require_read_only
from dolbom.dashboards.sample import CareHome, load
from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.influx.errors import QueryFailed
from dolbom.stack.influx import InfluxDB

TEAM = ("team_s001", "team-s001-password")


def test_dashboard_user_passes_the_read_only_check(
        dash_influx: InfluxDB, influx_users: InfluxUsers, care_home: CareHome) -> None:
    """The stack's dashboard user: not admin, cannot write, can read care, sees nothing else."""
    assert problems(dash_influx.url, *influx_users.dashboard, "care") == []


@pytest.mark.parametrize("who", ["ingest", "admin"])
def test_writing_or_admin_users_are_refused(dash_influx: InfluxDB, influx_users: InfluxUsers,
                                            care_home: CareHome, who: str) -> None:
    """deploy refuses a datasource whose user may write (ingest) or administer (admin)."""
    with pytest.raises(NotReadOnly):
        require_read_only(dash_influx.url, *getattr(influx_users, who), "care")


def test_a_centre_team_sees_only_its_own_site(
        dash_influx: InfluxDB, influx_users: InfluxUsers, care_home: CareHome) -> None:
    """A team's datasource user has READ on its site's database only: the shared database
    is refused and another site's query finds nothing there (S-09's foreign query)."""
    admin = InfluxHTTP(dash_influx.url, *influx_users.admin)
    admin.query('CREATE DATABASE "care_s001"', method="POST")
    admin.query('CREATE RETENTION POLICY "rollup" ON "care_s001" DURATION 104w REPLICATION 1',
                method="POST")
    admin.query(f'CREATE USER "{TEAM[0]}" WITH PASSWORD \'{TEAM[1]}\'', method="POST")
    admin.query(f'GRANT READ ON "care_s001" TO "{TEAM[0]}"', method="POST")
    with tempfile.TemporaryDirectory() as work:
        load(dash_influx.url, influx_users.admin, influx_users.admin, "care_s001", Path(work),
             end_ms=int(time.time() * 1000), sites=frozenset({"s001"}))
    assert problems(dash_influx.url, *TEAM, "care_s001") == []
    team = InfluxHTTP(dash_influx.url, *TEAM)
    panel = next(p for p in cat.operations().panels if p.key == "ops-points-stored")
    q = expand(panel.targets[0].query, panel, care_home.start_ms, care_home.end_ms,
               {"site": "(s000|s001)"})
    with pytest.raises(QueryFailed, match="not authorized"):
        team.query(q, "care")
    own = team.query(q, "care_s001")[0]["series"]
    assert any(v[1] for s in own for v in s["values"])
    foreign = expand(panel.targets[0].query, panel, care_home.start_ms, care_home.end_ms,
                     {"site": "s000"})
    assert "series" not in team.query(foreign, "care_s001")[0]
    assert [r["value"] for r in team.rows(model.site_var().query, "care_s001")] == ["s001"]
