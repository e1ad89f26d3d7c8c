"""A simulated care home in a real InfluxDB 1.6, shared by the dashboard tests."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dolbom.dashboards.sample import CareHome, load
from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.stack.influx import InfluxDB


@pytest.fixture(scope="session")
def dash_influx(make_influx: Callable[[], InfluxDB]) -> InfluxDB:
    """An InfluxDB of its own: other tests' points never mix into the panels' answers."""
    return make_influx()


@pytest.fixture(scope="session")
def care_home(dash_influx: InfluxDB, influx_users: InfluxUsers) -> CareHome:
    with tempfile.TemporaryDirectory() as work:
        return load(dash_influx.url, influx_users.admin, influx_users.ingest, "care",
                    Path(work), end_ms=int(time.time() * 1000))


@pytest.fixture(scope="session")
def grafana_reader(dash_influx: InfluxDB, influx_users: InfluxUsers) -> InfluxHTTP:
    """What Grafana's datasource is: the read-only dashboard user."""
    return InfluxHTTP(dash_influx.url, *influx_users.dashboard)
