"""Errors of the dashboards commands, by what the person running them must do."""

from __future__ import annotations


class DashboardsError(Exception):
    """Base class."""


class NotReadOnly(DashboardsError):
    """The datasource's InfluxDB user can write or administer: fix its grants first."""


class DeployFailed(DashboardsError):
    """Grafana refused a request (bad token, no permission, bad input)."""


class InfluxUnreachable(DashboardsError):
    """InfluxDB did not answer the read-only check (wrong URL, down, not reachable from
    here: ``deploy --no-check`` when only Grafana can reach it)."""
