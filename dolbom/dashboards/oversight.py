# ruff: noqa: S608 - InfluxQL built from this module's constants only; Grafana fills in
# the variables, whose values are InfluxDB's own tag values.
"""The dashboards of the people who oversee the service (pure, plain data): ``centre``
for a site's supervisors, ``operations`` for those who install devices and run the
service. ``dolbom.dashboards.catalogue`` lists them with the care workers' two.
"""

from __future__ import annotations

from dolbom.alerts.model import AlertClass
from dolbom.dashboards.model import (
    ACK_TARGETS,
    LOW_BATTERY_PCT,
    RAW_1M,
    SITE,
    Dashboard,
    Panel,
    Target,
    eq,
    matches,
    per_device,
    rules_of,
    site_var,
    where,
)


def alerts_per_interval(column: str, cond: str, tag: str, alias: str) -> Target:
    """Alert journal entries per interval, a series per value of ``tag`` (rule, worker)."""
    return Target("A", f'SELECT count("alert_id") AS "{column}" FROM "alert" WHERE {cond} '
                       f'GROUP BY time($__interval), "{tag}" fill(0)', ("time", column),
                  (tag,), alias=alias)


# ------------------------------------------------------------------------------ centre
def centre() -> Dashboard:
    raised = where(SITE, eq('kind', 'raised'))

    def by_class(ref: str, cls: AlertClass) -> Target:
        return Target(ref, f'SELECT count("alert_id") AS "{cls.value}" FROM "alert" WHERE '
                           f"{where(SITE, eq('kind', 'raised'), matches('rule', rules_of(cls)))} "
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
        (alerts_per_interval("alerts", raised, "rule", "$tag_rule"),),
        interval="1d", unit="short", bars=True, stacked=True, width=12)
    answered = Panel(
        "centre-answered-within", "stat", "High-priority alerts answered in time",
        "Share of life-safety alerts of the last 30 days acknowledged within 60 s "
        "(target 97.5 %) and within 180 s (target 99 %), as the alerts service counts "
        "them. Red: below target.",
        (Target("A", 'SELECT last("within_60s") * 100 AS "within_60s", '
                     'last("within_180s") * 100 AS "within_180s" FROM "alert_response" '
                     f"WHERE {where(SITE, eq('priority', 'high'))}",
                ("time", "within_60s", "within_180s")),),
        unit="percent", width=8,
        overrides=tuple((f"within_{s:g}s", {"thresholds": {"mode": "absolute", "steps": [
            {"value": None, "color": "red"}, {"value": pct, "color": "green"}]}})
            for s, pct in ACK_TARGETS))
    acked_high = where(SITE, eq("kind", "acknowledged"), eq("priority", "high"))
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
                     f"\"alert\" WHERE {where(SITE, eq('kind', 'resolved'))} "
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
    closed_by_person = where(SITE, eq("kind", "resolved"))
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
                     f"{where(SITE, eq('kind', 'auto_resolved'))} GROUP BY \"rule\"",
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
                     f"{where(SITE, matches('kind', 'resolved|auto_resolved'))} "
                     'GROUP BY "outcome"', ("time", "alerts"), ("outcome",), table=True),),
        unit="short", width=12, height=8, x_field="outcome",
        transformations=(("organize", {"excludeByName": {"Time": True}}),))
    per_worker = Panel(
        "centre-load-per-worker", "timeseries", "Alerts handled per worker per day",
        "How many alerts each person took (acknowledged) per day, by their user number: "
        "the console's user list says who that is, to those allowed to know (names never "
        "leave it). An uneven load, or a worker far above about three welfare and "
        "technical alerts a day, is worth a look at assignments.",
        (alerts_per_interval("handled", where(SITE, eq("kind", "acknowledged")), "worker",
                             "worker $tag_worker"),),
        interval="1d", unit="short", bars=True, stacked=True, width=24)
    return Dashboard(
        "dolbom-centre", "centre", "Centre",
        "A site's alerts and how fast people answered them, against the telecare targets.",
        "Supervisors at a regional centre", "now-30d", (site_var(),),
        (per_class, per_rule, answered, tta, ttr, false_alarms, outcomes, per_worker,
         per_home), refresh="5m")


# ------------------------------------------------------------------------------ operations
def operations() -> Dashboard:
    w = where(SITE)
    technical_raised = where(SITE, eq("kind", "raised"),
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
                     f"{where(SITE, eq('state', 'lost'))} "
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
        (per_device("mean", "rssi_dbm", w),),
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
        (alerts_per_interval("alerts", technical_raised, "rule", "$tag_rule"),),
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
