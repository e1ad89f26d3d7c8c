"""Grafana's expansion of an InfluxQL target, done here the way Grafana does it (pure).

Grafana cannot run on the machines that test Dolbom, so the test suite and the
pictures in docs/dashboards.md expand each panel's query with these rules and send it
to the real InfluxDB, as Grafana's InfluxDB datasource (InfluxQL, Grafana 11) would:

- ``$timeFilter``  ->  ``time >= <from>ms and time <= <to>ms``;
- ``$__interval``  ->  the range divided by the panel's max data points, rounded to
  Grafana's steps (``round_interval``), never below the panel's minimum interval (or
  the datasource's), written as Grafana's backend writes it (``format_interval``);
- a template variable: its value as it is when the variable is single-valued; when it
  is multi-valued or has "All", each value regex-escaped and several joined as
  ``(a|b)`` (the datasource's ``interpolateQueryExpr``); "All" without a custom value
  means every value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dolbom.dashboards.model import (
    DATASOURCE_MIN_INTERVAL,
    MAX_DATA_POINTS,
    Panel,
    Variable,
)

# Grafana's roundInterval (packages/grafana-data/src/datetime/rangeutil.ts): below each
# bound (ms), the interval it rounds to.
_ROUND: tuple[tuple[int, int], ...] = (
    (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1_500, 1_000),
    (3_500, 2_000), (7_500, 5_000), (12_500, 10_000), (17_500, 15_000), (25_000, 20_000),
    (45_000, 30_000), (90_000, 60_000), (210_000, 120_000), (450_000, 300_000),
    (750_000, 600_000), (1_050_000, 900_000), (1_500_000, 1_200_000),
    (2_700_000, 1_800_000), (5_400_000, 3_600_000), (9_000_000, 7_200_000),
    (16_200_000, 10_800_000), (32_400_000, 21_600_000), (86_400_000, 43_200_000),
    (604_800_000, 86_400_000), (1_814_400_000, 604_800_000),
    (3_628_800_000, 2_592_000_000),
)
_YEAR_MS = 31_536_000_000
_UNITS = (("y", 31_536_000_000), ("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
          ("m", 60_000), ("s", 1_000), ("ms", 1))
_REGEX_SPECIAL = re.compile(r"([\\^$*+?.()|{}\[\]/])")


def round_interval(ms: float) -> int:
    for bound, value in _ROUND:
        if ms < bound:
            return value
    return _YEAR_MS


def parse_duration(text: str) -> int:
    """``"90d"`` -> ms (the units Grafana accepts in intervals and relative ranges)."""
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w|y)", text)
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return int(m[1]) * dict(_UNITS)[m[2]]


def format_interval(ms: int) -> str:
    """An interval as Grafana's backend writes it into a query (gtime.FormatInterval):
    the largest unit of y, d, h, m, s, ms that fits, truncated."""
    for unit, size in _UNITS:
        if unit != "w" and ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


def interval_ms(panel: Panel, from_ms: int, to_ms: int) -> int:
    """The range over the max data points, rounded, never below the panel's minimum
    interval nor the datasource's (``timeInterval`` in the provisioning file)."""
    ms = round_interval((to_ms - from_ms) / MAX_DATA_POINTS)
    low = parse_duration(panel.interval or DATASOURCE_MIN_INTERVAL)
    return max(ms, low)


def panel_range(panel: Panel, from_ms: int, to_ms: int) -> tuple[int, int]:
    """A panel with its own relative range (``timeFrom``) ends at the dashboard's end."""
    if panel.time_from:
        return to_ms - parse_duration(panel.time_from), to_ms
    return from_ms, to_ms


def escape_regex(value: str) -> str:
    return _REGEX_SPECIAL.sub(r"\\\1", value)


@dataclass(frozen=True)
class Selection:
    """What a person picked for one variable: values, or All."""

    values: tuple[str, ...] = ()
    all: bool = False


def variable_text(var: Variable, sel: Selection, options: Sequence[str]) -> str:
    values = tuple(options) if sel.all else sel.values
    if not values:
        raise ValueError(f"variable {var.name} has no value")
    if not var.multi and not var.include_all:
        return values[0]
    escaped = [escape_regex(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def expand_variables(query: str, values: Mapping[str, str]) -> str:
    """``$name`` and ``${name}`` replaced; Grafana's own macros are left alone."""
    def sub(m: re.Match[str]) -> str:
        name = m[1] or m[2]
        return values.get(name, m[0])
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", sub, query)


def expand(query: str, panel: Panel, from_ms: int, to_ms: int,
           values: Mapping[str, str]) -> str:
    """The InfluxQL that Grafana sends for ``query`` of ``panel`` over a dashboard range."""
    start, end = panel_range(panel, from_ms, to_ms)
    text = expand_variables(query, values)
    step = format_interval(interval_ms(panel, start, end))
    # in the order of Grafana's backend (pkg/tsdb/influxdb/models/query.go)
    text = text.replace("$interval", step)
    text = text.replace("$__interval_ms", str(interval_ms(panel, start, end)))
    text = text.replace("$__interval", step)
    return text.replace("$timeFilter", f"time >= {start}ms and time <= {end}ms")
