"""Grafana dashboards as plain data (pure): the types a dashboard is made of, its
variables, and the InfluxQL pieces the panels share (``dolbom.dashboards.catalogue``
holds the dashboards themselves; ``build`` turns them into Grafana's JSON).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dolbom.alerts.model import RULE_CLASS, AlertClass

DATASOURCE_UID = "dolbom-influxdb"
DATASOURCE_NAME = "Dolbom InfluxDB"
# Grafana draws at most this many points per series: with the panel's minimum interval
# it decides $__interval (dolbom.dashboards.expand computes it the same way).
MAX_DATA_POINTS = 500
# The datasource's minimum interval: no $__interval is ever shorter.
DATASOURCE_MIN_INTERVAL = "1m"

PanelKind = Literal["timeseries", "table", "stat", "heatmap", "state-timeline", "barchart"]

SITE = '"site" =~ /^$site$/'
HOME = '"home" =~ /^$home$/'
ACTIVITY = '"type" =~ /^(motion|door|bed|presence)$/'
RAW_1M = '"rollup"."reading_1m"'
ROLLUP_1H = '"rollup"."reading_1h"'
# DESIGN.md §5: the default heat and cold limits (per-resident overrides live in the
# registry, which Grafana does not read).
HEAT_C, COLD_C = 32.0, 10.0
LOW_BATTERY_PCT = 20.0
# Blue below the cold limit, green between, red above the heat limit.
TEMPERATURE_STEPS: tuple[tuple[float | None, str], ...] = (
    (None, "blue"), (COLD_C, "green"), (HEAT_C, "red"))
# DESIGN.md §5: 97.5 % answered within 60 s, 99 % within 180 s.
ACK_TARGETS = ((60.0, 97.5), (180.0, 99.0))


def rules_of(cls: AlertClass) -> str:
    """A regex alternative of the rules of one alert class (from the alerts model)."""
    return "|".join(sorted(r.value for r, c in RULE_CLASS.items() if c is cls))


@dataclass(frozen=True)
class Target:
    """One InfluxQL query of a panel and the shape of its answer."""

    ref: str
    query: str
    columns: tuple[str, ...]  # the columns of every series returned, time first
    tags: tuple[str, ...] = ()  # the GROUP BY tags each series carries
    alias: str | None = None
    table: bool = False  # resultFormat "table" instead of "time_series"


@dataclass(frozen=True)
class Variable:
    name: str
    label: str
    query: str  # SHOW TAG VALUES ...: opaque ids only
    description: str
    multi: bool = False
    include_all: bool = False


@dataclass(frozen=True)
class Link:
    title: str
    url: str


@dataclass(frozen=True)
class Panel:
    key: str  # stable: the panel id is derived from the order, the key names it in tests
    kind: PanelKind
    title: str
    description: str
    targets: tuple[Target, ...]
    unit: str | None = None
    interval: str | None = None  # the panel's minimum interval ($__interval never below)
    time_from: str | None = None  # a panel-own range, e.g. "90d" for the long view
    width: int = 12
    height: int = 8
    thresholds: tuple[tuple[float | None, str], ...] = ()
    threshold_lines: bool = False
    bars: bool = False
    stacked: bool = False
    transformations: tuple[tuple[str, Mapping[str, Any]], ...] = ()
    overrides: tuple[tuple[str, Mapping[str, Any]], ...] = ()  # (field name, properties)
    links: tuple[Link, ...] = ()
    row: str | None = None  # panels of a row follow it
    value_colors: tuple[tuple[str, str], ...] = ()  # (value, colour): a text value's colour
    x_field: str = "home"  # a bar chart's categories


@dataclass(frozen=True)
class Dashboard:
    uid: str  # stable: bookmarks and links survive every rebuild
    slug: str
    title: str
    description: str
    audience: str
    time_from: str
    variables: tuple[Variable, ...]
    panels: tuple[Panel, ...]
    refresh: str = "1m"
    tags: tuple[str, ...] = field(default=("dolbom",))


# ------------------------------------------------------------------------------ variables
def site_var(multi: bool = False) -> Variable:
    return Variable(
        "site", "Site", 'SHOW TAG VALUES FROM "device_status" WITH KEY = "site"',
        "A care centre or facility, by its id (names stay in the console).",
        multi=multi, include_all=multi)


def home_var(multi: bool) -> Variable:
    return Variable(
        "home", "Home",
        'SHOW TAG VALUES FROM "device_status" WITH KEY = "home" WHERE "site" =~ /^$site$/',
        "A home by its opaque id; the console shows who lives there to those allowed to "
        "know.", multi=multi, include_all=multi)


def eq(tag: str, value: str) -> str:
    return f"\"{tag}\" = '{value}'"


def matches(tag: str, alternatives: str) -> str:
    return f'"{tag}" =~ /^({alternatives})$/'


def where(*conds: str) -> str:
    """A WHERE clause: the conditions and Grafana's time range."""
    return " AND ".join((*conds, "$timeFilter"))


ABSENT = "resolved|auto_resolved"


def console_link(console_url: str) -> Link:
    # The console's page of a resident is keyed by the resident, which Grafana never
    # sees; the board lists the worker's homes by the same ids.
    return Link("Open the console board", console_url.rstrip("/") + "/console/board")


def mean_per_interval(field: str, source: str, cond: str, alias: str) -> Target:
    """One reading's mean per interval from a rollup (``RAW_1M``, ``ROLLUP_1H``); an
    interval without readings stays a gap (fill(null)), not a zero."""
    return Target("A", f'SELECT mean("{field}") AS "{field}" FROM {source} '  # noqa: S608
                       f"WHERE {cond} GROUP BY time($__interval) fill(null)",
                  ("time", field), alias=alias)


def per_device(fn: str, field: str, cond: str) -> Target:
    """One reading per interval and device (``fn``: last, mean), a series a device."""
    return Target("A", f'SELECT {fn}("{field}") AS "{field}" FROM "reading" '  # noqa: S608
                       f'WHERE {cond} GROUP BY time($__interval), "device" fill(none)',
                  ("time", field), ("device",), alias="$tag_device")
