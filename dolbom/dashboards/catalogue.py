# ruff: noqa: S608 - InfluxQL built from this module's constants only; Grafana fills in
# the variables, whose values are InfluxDB's own tag values.
"""The dashboards, their variables and panels, as plain data (pure).

Four dashboards (docs/dashboards.md says who looks at each and why):

- ``my-homes``  a care worker's homes: last activity against the longest usual quiet
  spell, open alerts, device health, a link to the console;
- ``one-home``  one home in detail: activity per hour against its usual band, room
  temperature against the heat and cold limits, bed and door, power use, battery and
  signal, and the long view from the 1-hour rollups;
- ``centre``    a supervisor's site: alerts per day by class and rule, time to
  acknowledge and to resolve against the 60 s / 180 s targets, alerts per home;
- ``operations`` devices lost, low batteries, signal, points stored, data freshness,
  technical alerts.

Everything here is read from InfluxDB only (DESIGN.md §4): ``event``, ``reading`` and
``device_status`` (ingest), ``reading_1m`` (ingest) and ``reading_1h`` (a continuous
query) in the ``rollup`` policy, ``alert`` and ``alert_response`` (the alerts
service). Tags are opaque ids (DESIGN.md §6), so the variables offer ids, never names.

Each target says which columns (and which GROUP BY tags) InfluxDB returns for it: the
test suite runs every query against the real InfluxDB and checks exactly that.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from dolbom.alerts.model import RULE_CLASS, AlertClass

# The console behind its HTTPS proxy in a deployment; `build --console-url` sets it.
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8080"
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


def _where(*conds: str) -> str:
    return " AND ".join((*conds, "$timeFilter"))


ABSENT = "resolved|auto_resolved"


def console_link(console_url: str) -> Link:
    # The console's page of a resident is keyed by the resident, which Grafana never
    # sees; the board lists the worker's homes by the same ids.
    return Link("Open the console board", console_url.rstrip("/") + "/console/board")


# ------------------------------------------------------------------------------ my homes
def my_homes(console_url: str) -> Dashboard:
    w = _where(SITE, HOME)
    activity = Panel(
        "homes-last-activity", "table", "Homes: last activity and longest usual quiet",
        "For each home, when any activity sensor (motion, door, bed, presence) last saw "
        "the person, beside the longest quiet spell of the last 7 days (usually the "
        "night). A last activity older than that usual quiet spell deserves a call.",
        (Target("A", 'SELECT last("seq") AS "activity" FROM "event" WHERE '
                     f'{_where(SITE, HOME, ACTIVITY)} GROUP BY "home"',
                ("time", "activity"), ("home",), table=True),
         Target("B", 'SELECT max("quiet_s") AS "longest_quiet_s" FROM (SELECT '
                     'elapsed("seq", 1s) AS "quiet_s" FROM "event" WHERE '
                     f'{_where(SITE, HOME, ACTIVITY)} GROUP BY "home") WHERE $timeFilter '
                     'GROUP BY "home"',
                ("time", "longest_quiet_s"), ("home",), table=True)),
        time_from="7d", width=24, height=8,
        transformations=(("merge", {}),
                         ("organize", {"excludeByName": {"activity": True},
                                       "renameByName": {"Time": "Last activity",
                                                        "longest_quiet_s":
                                                        "Longest quiet (7 days)",
                                                        "home": "Home"}})),
        overrides=(("Last activity", {"unit": "dateTimeFromNow"}),
                   ("Longest quiet (7 days)", {"unit": "s"})),
        links=(console_link(console_url),))
    per_hour = Panel(
        "homes-activity-per-hour", "timeseries", "Activity per hour, each home",
        "How many activity events each home's sensors reported per hour. A home that "
        "goes flat when it is usually busy stands out.",
        (Target("A", 'SELECT count("seq") AS "activity" FROM "event" WHERE '
                     f'{_where(SITE, HOME, ACTIVITY)} GROUP BY time($__interval), "home" '
                     "fill(0)", ("time", "activity"), ("home",), alias="$tag_home"),),
        interval="1h", unit="short", bars=True, width=24, height=8)
    alerts = Panel(
        "homes-open-alerts", "table", "Open alerts",
        "Alerts of these homes in the last 30 days that nobody has resolved yet, with "
        "their latest state (raised, acknowledged, escalated). The console is where they "
        "are acknowledged and resolved.",
        (Target("A", 'SELECT "alert_id", "count", "home", "rule", "priority", "kind" FROM '
                     f'"alert" WHERE {w}',
                ("time", "alert_id", "count", "home", "rule", "priority", "kind"),
                table=True),),
        time_from="30d", width=12, height=9,
        transformations=(
            ("groupBy", {"fields": {
                "alert_id": {"aggregations": [], "operation": "groupby"},
                "Time": {"aggregations": ["last"], "operation": "aggregate"},
                "home": {"aggregations": ["last"], "operation": "aggregate"},
                "rule": {"aggregations": ["last"], "operation": "aggregate"},
                "priority": {"aggregations": ["last"], "operation": "aggregate"},
                "kind": {"aggregations": ["last"], "operation": "aggregate"},
                "count": {"aggregations": ["max"], "operation": "aggregate"}}}),
            ("filterByValue", {"type": "exclude", "match": "any", "filters": [
                {"fieldName": "kind (last)", "config": {
                    "id": "regex", "options": {"value": f"^({ABSENT})$"}}}]}),
        ))
    devices = Panel(
        "homes-device-health", "table", "Devices: state and battery",
        "Each device's last reported state (ready, sleeping, lost) and battery. A lost "
        "device means the home is not watched by it: operators are told, and the care "
        "worker when it was the home's only activity sensor.",
        (Target("A", 'SELECT last("state") AS "state" FROM "device_status" WHERE '
                     f'{w} GROUP BY "home", "device"',
                ("time", "state"), ("home", "device"), table=True),
         Target("B", 'SELECT last("battery_pct") AS "battery_pct" FROM "reading" WHERE '
                     f'{w} GROUP BY "home", "device"',
                ("time", "battery_pct"), ("home", "device"), table=True)),
        time_from="24h", width=12, height=9,
        transformations=(("merge", {}),
                         ("organize", {"excludeByName": {"Time": True}})),
        overrides=(("battery_pct", {"unit": "percent"}),))
    modes = Panel(
        "homes-mode", "state-timeline", "Away or in hospital",
        "Each home's mode: normal, away (the person is travelling or staying with family) "
        "or hospital. Away and hospital pause the welfare alerts of that home, so a quiet "
        "home in one of them is expected. Set in the console or with `dolbom home mode`.",
        (Target("A", f'SELECT "mode" FROM "home_mode" WHERE {w} GROUP BY "home"',
                ("time", "mode"), ("home",), alias="$tag_home"),),
        width=24, height=6,
        value_colors=(("normal", "green"), ("away", "blue"), ("hospital", "orange")))
    return Dashboard(
        "dolbom-my-homes", "my-homes", "My homes",
        "A care worker's homes at a glance: who has been quiet for longer than usual, "
        "open alerts and devices that need a visit.",
        "Care workers (생활지원사, 응급관리요원)", "now-24h",
        (site_var(), home_var(multi=True)), (activity, modes, per_hour, alerts, devices))


# ------------------------------------------------------------------------------ one home
def one_home() -> Dashboard:
    w = _where(SITE, HOME)
    heat = Panel(
        "home-activity-heatmap", "heatmap", "Activity per hour, by sensor",
        "Each column is an hour, each row a kind of activity sensor (motion, door, bed); "
        "the darker the cell, the more the person moved. Nights are the pale bands; a "
        "pale band by day is a day unlike the others.",
        (Target("A", 'SELECT count("seq") AS "events" FROM "event" WHERE '
                     f'{_where(SITE, HOME, ACTIVITY)} GROUP BY time($__interval), "type" '
                     "fill(0)", ("time", "events"), ("type",), alias="$tag_type"),),
        interval="1h", width=24, height=8)
    band = Panel(
        "home-activity-band", "timeseries", "Activity against the usual band",
        "Activity events per hour (bars) against this person's usual over the shown "
        "period: the mean hour and a busy hour (90th percentile), drawn as lines.",
        (Target("A", 'SELECT count("seq") AS "activity" FROM "event" WHERE '
                     f'{_where(SITE, HOME, ACTIVITY)} GROUP BY time($__interval) fill(0)',
                ("time", "activity")),
         Target("B", 'SELECT mean("n") AS "usual", percentile("n", 90) AS "busy" FROM '
                     '(SELECT count("seq") AS "n" FROM "event" WHERE '
                     f'{_where(SITE, HOME, ACTIVITY)} GROUP BY time($__interval) fill(0)) '
                     "WHERE $timeFilter", ("time", "usual", "busy"), table=True)),
        interval="1h", unit="short", bars=True, width=24, height=8, threshold_lines=True,
        thresholds=((None, "blue"),),
        # "Config from query results": each mapped field of B adds a threshold step to A
        transformations=(("configFromData", {
            "configRefId": "B", "applyTo": {"id": "byFrameRefID", "options": "A"},
            "mappings": [{"fieldName": "usual", "handlerKey": "threshold1",
                          "handlerArguments": {"threshold": {"color": "green"}}},
                         {"fieldName": "busy", "handlerKey": "threshold1",
                          "handlerArguments": {"threshold": {"color": "orange"}}}]}),))
    temp = Panel(
        "home-temperature", "timeseries", "Room temperature",
        f"Indoor temperature (the home's sensors, 1-minute means) against the heat limit "
        f"({HEAT_C:g} °C) and the cold limit ({COLD_C:g} °C): 30 minutes beyond either "
        "raises a welfare alert.",
        (Target("A", f'SELECT mean("temperature_c") AS "temperature_c" FROM {RAW_1M} '
                     f"WHERE {w} GROUP BY time($__interval) fill(null)",
                ("time", "temperature_c"), alias="temperature"),),
        unit="celsius", interval="1m", width=12, threshold_lines=True,
        thresholds=((None, "blue"), (COLD_C, "green"), (HEAT_C, "red")))
    bed_door = Panel(
        "home-bed-door", "state-timeline", "Bed and door",
        "When the person got into and out of bed and when the front door opened and "
        "closed. Out of bed at night for long, or the door at night, can be a concern.",
        (Target("A", 'SELECT "val" FROM "event" WHERE '
                     + _where(SITE, HOME, matches("type", "bed|door")) + ' GROUP BY "type"',
                ("time", "val"), ("type",), alias="$tag_type"),),
        width=12)
    power = Panel(
        "home-power", "timeseries", "Power use",
        "Power drawn by the monitored plug (kettle, rice cooker, TV), 1-minute means. "
        "Daily use that stops is one of the signs of a welfare concern.",
        (Target("A", f'SELECT mean("power_w") AS "power_w" FROM {RAW_1M} WHERE {w} '
                     "GROUP BY time($__interval) fill(null)", ("time", "power_w"),
                alias="power"),),
        unit="watt", interval="1m", width=12)
    battery = Panel(
        "home-battery", "timeseries", "Battery by device",
        f"Battery of each battery-powered device. Below {LOW_BATTERY_PCT:g} % an "
        "operator is told to replace it.",
        (Target("A", 'SELECT last("battery_pct") AS "battery_pct" FROM "reading" WHERE '
                     f'{w} GROUP BY time($__interval), "device" fill(none)',
                ("time", "battery_pct"), ("device",), alias="$tag_device"),),
        unit="percent", interval="1h", width=12, threshold_lines=True,
        thresholds=((None, "red"), (LOW_BATTERY_PCT, "green")))
    signal = Panel(
        "home-signal", "timeseries", "Signal strength by device",
        "Wi-Fi signal (RSSI) reported by the home's gateway and mains devices; below "
        "about -80 dBm messages start to get lost.",
        (Target("A", 'SELECT mean("rssi_dbm") AS "rssi_dbm" FROM "reading" WHERE '
                     f'{w} GROUP BY time($__interval), "device" fill(none)',
                ("time", "rssi_dbm"), ("device",), alias="$tag_device"),),
        unit="dBm", interval="10m", width=12)
    long_temp = Panel(
        "home-temperature-90d", "timeseries", "Room temperature, last 90 days",
        "The same temperature over 90 days, read from the hourly rollup (kept 2 years), "
        "so a long view stays fast: summers and winters of this home side by side.",
        (Target("A", f'SELECT mean("temperature_c") AS "temperature_c" FROM {ROLLUP_1H} '
                     f"WHERE {w} GROUP BY time($__interval) fill(null)",
                ("time", "temperature_c"), alias="temperature"),),
        unit="celsius", interval="1h", time_from="90d", width=12, row="Long view",
        threshold_lines=True, thresholds=((None, "blue"), (COLD_C, "green"), (HEAT_C, "red")))
    long_power = Panel(
        "home-power-90d", "timeseries", "Power use, last 90 days",
        "Power use over 90 days from the hourly rollup: a habit that fades slowly shows "
        "here before it becomes an alert.",
        (Target("A", f'SELECT mean("power_w") AS "power_w" FROM {ROLLUP_1H} WHERE {w} '
                     "GROUP BY time($__interval) fill(null)", ("time", "power_w"),
                alias="power"),),
        unit="watt", interval="1h", time_from="90d", width=12, row="Long view")
    return Dashboard(
        "dolbom-one-home", "one-home", "One home",
        "One home in detail: the person's day, the room, the devices.",
        "Care workers and supervisors, before a call or a visit", "now-7d",
        (site_var(), home_var(multi=False)),
        (heat, band, temp, bed_door, power, battery, signal, long_temp, long_power))


# ------------------------------------------------------------------------------ centre
def centre() -> Dashboard:
    raised = _where(SITE, eq('kind', 'raised'))

    def by_class(ref: str, cls: AlertClass) -> Target:
        return Target(ref, f'SELECT count("alert_id") AS "{cls.value}" FROM "alert" WHERE '
                           f"{_where(SITE, eq('kind', 'raised'), matches('rule', rules_of(cls)))} "
                           "GROUP BY time($__interval) fill(0)",
                      ("time", cls.value), alias=cls.value.replace("_", "-"))

    per_class = Panel(
        "centre-alerts-by-class", "timeseries", "Alerts per day by class",
        "New alerts each day: life-safety (button, fall, smoke, gas, voice), welfare "
        "(inactivity, temperature, night, door, power, concern) and technical (devices, "
        "batteries, services).",
        tuple(by_class(r, c) for r, c in zip("ABC", (AlertClass.LIFE_SAFETY,
                                                     AlertClass.WELFARE,
                                                     AlertClass.TECHNICAL), strict=True)),
        interval="1d", unit="short", bars=True, stacked=True, width=12)
    per_rule = Panel(
        "centre-alerts-by-rule", "timeseries", "Alerts per day by rule",
        "New alerts each day by the rule that raised them: a rule that suddenly fires "
        "more often is worth a look at its thresholds.",
        (Target("A", f'SELECT count("alert_id") AS "alerts" FROM "alert" WHERE {raised} '
                     'GROUP BY time($__interval), "rule" fill(0)', ("time", "alerts"),
                ("rule",), alias="$tag_rule"),),
        interval="1d", unit="short", bars=True, stacked=True, width=12)
    answered = Panel(
        "centre-answered-within", "stat", "High-priority alerts answered in time",
        "Share of life-safety alerts of the last 30 days acknowledged within 60 s "
        "(target 97.5 %) and within 180 s (target 99 %), as the alerts service counts "
        "them. Red: below target.",
        (Target("A", 'SELECT last("within_60s") * 100 AS "within_60s", '
                     'last("within_180s") * 100 AS "within_180s" FROM "alert_response" '
                     f"WHERE {_where(SITE, eq('priority', 'high'))}",
                ("time", "within_60s", "within_180s")),),
        unit="percent", width=8,
        overrides=tuple((f"within_{s:g}s", {"thresholds": {"mode": "absolute", "steps": [
            {"value": None, "color": "red"}, {"value": pct, "color": "green"}]}})
            for s, pct in ACK_TARGETS))
    acked_high = _where(SITE, eq("kind", "acknowledged"), eq("priority", "high"))
    tta = Panel(
        "centre-time-to-acknowledge", "timeseries", "Time to acknowledge, high priority",
        "Per day, how long the slowest life-safety alerts waited for a person: the 97.5th "
        "percentile should stay under 60 s and the 99th under 180 s (the lines).",
        (Target("A", 'SELECT percentile("seconds", 97.5) AS "p97_5" FROM "alert" WHERE '
                     f"{acked_high} GROUP BY time($__interval)", ("time", "p97_5"),
                alias="97.5th percentile"),
         Target("B", 'SELECT percentile("seconds", 99) AS "p99" FROM "alert" WHERE '
                     f"{acked_high} GROUP BY time($__interval)", ("time", "p99"),
                alias="99th percentile")),
        unit="s", interval="1d", width=8, threshold_lines=True,
        thresholds=((None, "green"), (60.0, "orange"), (180.0, "red")))
    ttr = Panel(
        "centre-time-to-resolve", "timeseries", "Time to resolve",
        "Per day, the median and the slowest time from an alert to a person closing it "
        "with an outcome (alerts that cleared by themselves are left out).",
        (Target("A", 'SELECT median("seconds") AS "median", max("seconds") AS "max" FROM '
                     f"\"alert\" WHERE {_where(SITE, eq('kind', 'resolved'))} "
                     "GROUP BY time($__interval)", ("time", "median", "max")),),
        unit="s", interval="1d", width=8)
    per_home = Panel(
        "centre-alerts-per-home", "barchart", "Alerts per home",
        "How many alerts each home raised in the period: where the workload comes from, "
        "and homes whose thresholds may need tuning.",
        (Target("A", f'SELECT count("alert_id") AS "alerts" FROM "alert" WHERE {raised} '
                     'GROUP BY "home"', ("time", "alerts"), ("home",), table=True),),
        unit="short", width=24,
        transformations=(("organize", {"excludeByName": {"Time": True}}),))
    closed_by_person = _where(SITE, eq("kind", "resolved"))
    false_alarms = Panel(
        "centre-false-alarms", "table", "False alarms by rule",
        "For each rule, the alerts a person closed in the period, how many of them they "
        "judged a false alarm, and that share; beside it, the alerts that closed by "
        "themselves (the condition cleared: device back, movement again) without a "
        "person's verdict. A rule with a high share wants its thresholds or its devices "
        "looked at.",
        (Target("A", 'SELECT count("false_alarm") AS "closed", sum("false_alarm") AS '
                     '"false_alarms", mean("false_alarm") * 100 AS "false_alarm_pct" FROM '
                     f'"alert" WHERE {closed_by_person} GROUP BY "rule"',
                ("time", "closed", "false_alarms", "false_alarm_pct"), ("rule",),
                table=True),
         Target("B", 'SELECT count("alert_id") AS "cleared" FROM "alert" WHERE '
                     f"{_where(SITE, eq('kind', 'auto_resolved'))} GROUP BY \"rule\"",
                ("time", "cleared"), ("rule",), table=True)),
        width=12, height=8,
        transformations=(("merge", {}),
                         ("organize", {"excludeByName": {"Time": True},
                                       "renameByName": {
                                           "rule": "Rule", "closed": "Closed by a person",
                                           "false_alarms": "False alarms",
                                           "false_alarm_pct": "False alarm %",
                                           "cleared": "Cleared by themselves"}})),
        overrides=(("False alarm %", {"unit": "percent", "decimals": 0}),))
    outcomes = Panel(
        "centre-outcomes", "barchart", "Outcomes",
        "How the alerts closed in the period ended: false alarm, visited and well, needs "
        "care, emergency dispatched, hospitalised, deceased, or cleared by themselves "
        "(auto_cleared).",
        (Target("A", 'SELECT count("alert_id") AS "alerts" FROM "alert" WHERE '
                     f"{_where(SITE, matches('kind', 'resolved|auto_resolved'))} "
                     'GROUP BY "outcome"', ("time", "alerts"), ("outcome",), table=True),),
        unit="short", width=12, height=8, x_field="outcome",
        transformations=(("organize", {"excludeByName": {"Time": True}}),))
    per_worker = Panel(
        "centre-load-per-worker", "timeseries", "Alerts handled per worker per day",
        "How many alerts each person took (acknowledged) per day, by their user number: "
        "the console's user list says who that is, to those allowed to know (names never "
        "leave it). An uneven load, or a worker far above about three welfare and "
        "technical alerts a day, is worth a look at assignments.",
        (Target("A", 'SELECT count("alert_id") AS "handled" FROM "alert" WHERE '
                     f"{_where(SITE, eq('kind', 'acknowledged'))} "
                     'GROUP BY time($__interval), "worker" fill(0)', ("time", "handled"),
                ("worker",), alias="worker $tag_worker"),),
        interval="1d", unit="short", bars=True, stacked=True, width=24)
    return Dashboard(
        "dolbom-centre", "centre", "Centre",
        "A site's alerts and how fast people answered them, against the telecare targets.",
        "Supervisors at a regional centre", "now-30d", (site_var(),),
        (per_class, per_rule, answered, tta, ttr, false_alarms, outcomes, per_worker,
         per_home), refresh="5m")


# ------------------------------------------------------------------------------ operations
def operations() -> Dashboard:
    w = _where(SITE)
    technical_raised = _where(SITE, eq("kind", "raised"),
                              matches("rule", rules_of(AlertClass.TECHNICAL)))
    states = Panel(
        "ops-device-state", "table", "Device state",
        "Each device's last reported state in the period. Lost: its Last Will came or "
        "it missed 3 heartbeats; sleeping: a battery device between wake-ups.",
        # one selector per query: with two, InfluxDB 1.x reports the range's start as
        # the time instead of the point's
        (Target("A", f'SELECT last("state") AS "state" FROM "device_status" WHERE {w} '
                     'GROUP BY "site", "home", "device"',
                ("time", "state"), ("site", "home", "device"), table=True),
         Target("B", f'SELECT last("fw") AS "fw" FROM "device_status" WHERE {w} '
                     'GROUP BY "site", "home", "device"',
                ("time", "fw"), ("site", "home", "device"), table=True)),
        width=12, height=9, transformations=(("merge", {}),),
        overrides=(("state", {"mappings": [{"type": "value", "options": {
            "lost": {"color": "red", "index": 0},
            "disconnected": {"color": "orange", "index": 1},
            "sleeping": {"color": "blue", "index": 2},
            "ready": {"color": "green", "index": 3}}}],
            "custom.cellOptions": {"type": "color-text"}}),))
    lost = Panel(
        "ops-devices-lost", "timeseries", "Devices reported lost",
        "How many devices were reported lost (a gateway or device gone silent) per "
        "interval. A spike across many homes is the network or the broker, not the homes.",
        (Target("A", 'SELECT count("state") AS "lost" FROM "device_status" WHERE '
                     f"{_where(SITE, eq('state', 'lost'))} "
                     "GROUP BY time($__interval) fill(0)", ("time", "lost")),),
        interval="10m", unit="short", bars=True, width=12, height=9)
    low = Panel(
        "ops-low-batteries", "table", "Low batteries",
        f"Devices whose last battery reading is under {LOW_BATTERY_PCT:g} %: the "
        "replacement list for the next round.",
        (Target("A", 'SELECT "battery_pct" FROM (SELECT last("battery_pct") AS '
                     f'"battery_pct" FROM "reading" WHERE {w} GROUP BY "home", "device") '
                     f'WHERE "battery_pct" < {LOW_BATTERY_PCT:g} AND $timeFilter '
                     'GROUP BY "home", "device"',
                ("time", "battery_pct"), ("home", "device"), table=True),),
        unit="percent", width=8, height=8,
        transformations=(("merge", {}),))
    rssi = Panel(
        "ops-rssi", "timeseries", "Signal strength (RSSI)",
        "Wi-Fi signal reported by gateways and mains devices; a device drifting below "
        "about -80 dBm will soon lose messages.",
        (Target("A", 'SELECT mean("rssi_dbm") AS "rssi_dbm" FROM "reading" WHERE '
                     f'{w} GROUP BY time($__interval), "device" fill(none)',
                ("time", "rssi_dbm"), ("device",), alias="$tag_device"),),
        unit="dBm", interval="10m", width=16, height=8)
    stored = Panel(
        "ops-points-stored", "timeseries", "Points stored",
        "What ingest stored per interval: events, readings (as counted in the 1-minute "
        "rollup) and device statuses. A drop to zero is ingest, the broker or InfluxDB.",
        (Target("A", f'SELECT count("seq") AS "events" FROM "event" WHERE {w} '
                     "GROUP BY time($__interval) fill(0)", ("time", "events"), alias="events"),
         Target("B", f'SELECT sum("samples") AS "readings" FROM {RAW_1M} WHERE {w} '
                     "GROUP BY time($__interval) fill(0)", ("time", "readings"),
                alias="readings"),
         Target("C", f'SELECT count("state") AS "statuses" FROM "device_status" WHERE {w} '
                     "GROUP BY time($__interval) fill(0)", ("time", "statuses"),
                alias="statuses")),
        interval="10m", unit="short", width=16, height=8)
    fresh = Panel(
        "ops-data-freshness", "stat", "Newest reading stored",
        "When ingest last wrote a 1-minute rollup for these sites. Minutes old is normal; "
        "more means ingest, the broker or InfluxDB needs a look.",
        (Target("A", f'SELECT last("samples") AS "samples" FROM {RAW_1M} WHERE {w}',
                ("time", "samples"), table=True),),
        width=8, height=8,
        transformations=(("organize", {"excludeByName": {"samples": True}}),),
        overrides=(("Time", {"unit": "dateTimeFromNow"}),))
    technical = Panel(
        "ops-technical-alerts", "timeseries", "Technical alerts by rule",
        "Technical alerts raised per interval: devices and gateways lost, low batteries, "
        "tampering, blind sensors, the broker, InfluxDB or a notification channel "
        "unreachable.",
        (Target("A", 'SELECT count("alert_id") AS "alerts" FROM "alert" WHERE '
                     f"{technical_raised} "
                     'GROUP BY time($__interval), "rule" fill(0)', ("time", "alerts"),
                ("rule",), alias="$tag_rule"),),
        interval="1h", unit="short", bars=True, stacked=True, width=24)
    stats = '"ingest_stats"'
    dead = Panel(
        "ops-dead-letters", "timeseries", "Dead letters by reason",
        "Messages ingest refused and kept aside, per interval, by reason: payloads that "
        "are not JSON or miss a field (firmware), devices not in the registry or on the "
        "wrong site (provisioning), points InfluxDB refused. From every ingest worker of "
        "this InfluxDB, all sites; `dolbom deadletters` lists them.",
        (Target("A", f'SELECT sum("dead_letters") AS "dead_letters" FROM {stats} WHERE '
                     '$timeFilter GROUP BY time($__interval), "reason" fill(0)',
                ("time", "dead_letters"), ("reason",), alias="$tag_reason"),),
        interval="10m", unit="short", bars=True, stacked=True, width=8, height=8,
        row="Ingest")
    spool = Panel(
        "ops-spool", "timeseries", "Spool depth",
        "Batches waiting in ingest's disk spool: while InfluxDB does not take writes, "
        "ingest keeps the data on disk and writes it back when InfluxDB answers again. "
        "Above zero for long means InfluxDB is down or too slow; points spooled and "
        "dropped (telemetry only, when the spool is full) are the other two lines.",
        (Target("A", f'SELECT max("spool_files") AS "spool_files" FROM {stats} WHERE '
                     '$timeFilter GROUP BY time($__interval), "instance" fill(none)',
                ("time", "spool_files"), ("instance",), alias="batches waiting $tag_instance"),
         Target("B", 'SELECT sum("spooled") AS "spooled", sum("spool_dropped") AS '
                     f'"dropped" FROM {stats} WHERE $timeFilter '
                     "GROUP BY time($__interval) fill(0)", ("time", "spooled", "dropped"))),
        interval="10m", unit="short", width=8, height=8, row="Ingest")
    latency = Panel(
        "ops-write-latency", "timeseries", "Write latency",
        "How long ingest takes to make a batch of messages durable (in InfluxDB, or on "
        "disk while InfluxDB is down): the mean, and the slowest 1 % (an upper bound, "
        "from the metric's buckets). Seconds here delay the dashboards, never an alarm.",
        (Target("A", 'SELECT mean("flush_mean_s") AS "mean", max("flush_p99_s") AS "p99" '
                     f'FROM {stats} WHERE $timeFilter GROUP BY time($__interval) fill(none)',
                ("time", "mean", "p99")),),
        unit="s", interval="10m", width=8, height=8, row="Ingest")
    return Dashboard(
        "dolbom-operations", "operations", "Operations",
        "Devices, batteries, signal and the data pipeline, for the people who keep the "
        "service running.", "Operators who install devices and run the service",
        "now-24h", (site_var(multi=True),),
        (states, lost, low, rssi, fresh, stored, technical, dead, spool, latency))


def all_dashboards(console_url: str) -> tuple[Dashboard, ...]:
    return (my_homes(console_url), one_home(), centre(), operations())
