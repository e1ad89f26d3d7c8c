# ruff: noqa: S608 - InfluxQL built from this module's constants only; Grafana fills in
# the variables, whose values are InfluxDB's own tag values.
"""The dashboards, their variables and panels, as plain data (pure).

Four dashboards (docs/dashboards.md says who looks at each and why); the care workers'
two are here, the overseers' two in ``oversight``, the types and the InfluxQL pieces
they share in ``model``:

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

from dolbom.dashboards.model import (
    ABSENT,
    ACTIVITY,
    COLD_C,
    HEAT_C,
    HOME,
    LOW_BATTERY_PCT,
    RAW_1M,
    ROLLUP_1H,
    SITE,
    TEMPERATURE_STEPS,
    Dashboard,
    Panel,
    Target,
    console_link,
    home_var,
    matches,
    mean_per_interval,
    per_device,
    site_var,
    where,
)
from dolbom.dashboards.oversight import centre, operations

# What callers take from here (dolbom.dashboards.pictures reads the types through it).
__all__ = ["DEFAULT_CONSOLE_URL", "Dashboard", "Panel", "all_dashboards", "centre", "my_homes",
           "one_home", "operations"]

# The console behind its HTTPS proxy in a deployment; `build --console-url` sets it.
DEFAULT_CONSOLE_URL = "http://127.0.0.1:8080"


# ------------------------------------------------------------------------------ my homes
def my_homes(console_url: str) -> Dashboard:
    w = where(SITE, HOME)
    activity = Panel(
        "homes-last-activity", "table", "Homes: last activity and longest usual quiet",
        "For each home, when any activity sensor (motion, door, bed, presence) last saw "
        "the person, beside the longest quiet spell of the last 7 days (usually the "
        "night). A last activity older than that usual quiet spell deserves a call.",
        (Target("A", 'SELECT last("seq") AS "activity" FROM "event" WHERE '
                     f'{where(SITE, HOME, ACTIVITY)} GROUP BY "home"',
                ("time", "activity"), ("home",), table=True),
         Target("B", 'SELECT max("quiet_s") AS "longest_quiet_s" FROM (SELECT '
                     'elapsed("seq", 1s) AS "quiet_s" FROM "event" WHERE '
                     f'{where(SITE, HOME, ACTIVITY)} GROUP BY "home") WHERE $timeFilter '
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
                     f'{where(SITE, HOME, ACTIVITY)} GROUP BY time($__interval), "home" '
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
    w = where(SITE, HOME)
    heat = Panel(
        "home-activity-heatmap", "heatmap", "Activity per hour, by sensor",
        "Each column is an hour, each row a kind of activity sensor (motion, door, bed); "
        "the darker the cell, the more the person moved. Nights are the pale bands; a "
        "pale band by day is a day unlike the others.",
        (Target("A", 'SELECT count("seq") AS "events" FROM "event" WHERE '
                     f'{where(SITE, HOME, ACTIVITY)} GROUP BY time($__interval), "type" '
                     "fill(0)", ("time", "events"), ("type",), alias="$tag_type"),),
        interval="1h", width=24, height=8)
    band = Panel(
        "home-activity-band", "timeseries", "Activity against the usual band",
        "Activity events per hour (bars) against this person's usual over the shown "
        "period: the mean hour and a busy hour (90th percentile), drawn as lines.",
        (Target("A", 'SELECT count("seq") AS "activity" FROM "event" WHERE '
                     f'{where(SITE, HOME, ACTIVITY)} GROUP BY time($__interval) fill(0)',
                ("time", "activity")),
         Target("B", 'SELECT mean("n") AS "usual", percentile("n", 90) AS "busy" FROM '
                     '(SELECT count("seq") AS "n" FROM "event" WHERE '
                     f'{where(SITE, HOME, ACTIVITY)} GROUP BY time($__interval) fill(0)) '
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
        (mean_per_interval("temperature_c", RAW_1M, w, "temperature"),),
        unit="celsius", interval="1m", width=12, threshold_lines=True,
        thresholds=TEMPERATURE_STEPS)
    bed_door = Panel(
        "home-bed-door", "state-timeline", "Bed and door",
        "When the person got into and out of bed and when the front door opened and "
        "closed. Out of bed at night for long, or the door at night, can be a concern.",
        (Target("A", 'SELECT "val" FROM "event" WHERE '
                     + where(SITE, HOME, matches("type", "bed|door")) + ' GROUP BY "type"',
                ("time", "val"), ("type",), alias="$tag_type"),),
        width=12)
    power = Panel(
        "home-power", "timeseries", "Power use",
        "Power drawn by the monitored plug (kettle, rice cooker, TV), 1-minute means. "
        "Daily use that stops is one of the signs of a welfare concern.",
        (mean_per_interval("power_w", RAW_1M, w, "power"),),
        unit="watt", interval="1m", width=12)
    battery = Panel(
        "home-battery", "timeseries", "Battery by device",
        f"Battery of each battery-powered device. Below {LOW_BATTERY_PCT:g} % an "
        "operator is told to replace it.",
        (per_device("last", "battery_pct", w),),
        unit="percent", interval="1h", width=12, threshold_lines=True,
        thresholds=((None, "red"), (LOW_BATTERY_PCT, "green")))
    signal = Panel(
        "home-signal", "timeseries", "Signal strength by device",
        "Wi-Fi signal (RSSI) reported by the home's gateway and mains devices; below "
        "about -80 dBm messages start to get lost.",
        (per_device("mean", "rssi_dbm", w),),
        unit="dBm", interval="10m", width=12)
    long_temp = Panel(
        "home-temperature-90d", "timeseries", "Room temperature, last 90 days",
        "The same temperature over 90 days, read from the hourly rollup (kept 2 years), "
        "so a long view stays fast: summers and winters of this home side by side.",
        (mean_per_interval("temperature_c", ROLLUP_1H, w, "temperature"),),
        unit="celsius", interval="1h", time_from="90d", width=12, row="Long view",
        threshold_lines=True, thresholds=TEMPERATURE_STEPS)
    long_power = Panel(
        "home-power-90d", "timeseries", "Power use, last 90 days",
        "Power use over 90 days from the hourly rollup: a habit that fades slowly shows "
        "here before it becomes an alert.",
        (mean_per_interval("power_w", ROLLUP_1H, w, "power"),),
        unit="watt", interval="1h", time_from="90d", width=12, row="Long view")
    return Dashboard(
        "dolbom-one-home", "one-home", "One home",
        "One home in detail: the person's day, the room, the devices.",
        "Care workers and supervisors, before a call or a visit", "now-7d",
        (site_var(), home_var(multi=False)),
        (heat, band, temp, bed_door, power, battery, signal, long_temp, long_power))


def all_dashboards(console_url: str) -> tuple[Dashboard, ...]:
    return (my_homes(console_url), one_home(), centre(), operations())
