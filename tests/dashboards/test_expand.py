"""Grafana's expansion of InfluxQL targets, as dolbom.dashboards.expand reproduces it."""

from __future__ import annotations

import pytest

from dolbom.dashboards.expand import (
    Selection,
    expand,
    format_interval,
    round_interval,
    variable_text,
)
from dolbom.dashboards.model import Panel, Target, Variable

SINGLE = Variable("site", "Site", "SHOW TAG VALUES", "d")
MULTI = Variable("home", "Home", "SHOW TAG VALUES", "d", multi=True, include_all=True)


@pytest.mark.parametrize(("raw_ms", "rounded"), [
    (14, 10), (1_000, 1_000), (40_000, 30_000), (60_000, 60_000), (172_800, 120_000),
    (1_209_600, 1_200_000), (5_184_000, 3_600_000), (100_000_000, 86_400_000),
    (4_000_000_000, 31_536_000_000),
])
def test_round_interval_follows_grafana_steps(raw_ms: int, rounded: int) -> None:
    """Range / max data points rounds to Grafana's steps (rangeutil.roundInterval)."""
    assert round_interval(raw_ms) == rounded


@pytest.mark.parametrize(("ms", "text"), [(20_000, "20s"), (60_000, "1m"),
                                          (1_200_000, "20m"), (3_600_000, "1h"),
                                          (5_400_000, "1h"), (86_400_000, "1d"),
                                          (604_800_000, "7d"), (500, "500ms")])
def test_interval_text(ms: int, text: str) -> None:
    """Intervals are written as Grafana's backend writes them: the largest unit that
    fits, truncated, no weeks."""
    assert format_interval(ms) == text


@pytest.mark.parametrize(("var", "sel", "text"), [
    (SINGLE, Selection(("s000",)), "s000"),
    (MULTI, Selection(("h1",)), "h1"),
    (MULTI, Selection(("h1", "h2")), "(h1|h2)"),
    (MULTI, Selection(all=True), "(h1|h2|h3)"),
    (MULTI, Selection(("a.b",)), r"a\.b"),
])
def test_variable_values_as_grafana_interpolates_them(var: Variable, sel: Selection,
                                                       text: str) -> None:
    """Single: as is; multi or All: regex-escaped, several as (a|b)."""
    assert variable_text(var, sel, ["h1", "h2", "h3"]) == text


def test_expand_fills_time_filter_interval_and_variables() -> None:
    """$timeFilter, $__interval and the variables, with the panel's minimum interval and
    its own relative range."""
    p = Panel("k", "timeseries", "t", "d", (Target("A", "q", ("time",)),), interval="1h",
              time_from="7d")
    q = ('SELECT count("seq") FROM "event" WHERE "home" =~ /^$home$/ AND $timeFilter '
         "GROUP BY time($__interval)")
    end = 1_800_000_000_000
    start = end - 7 * 86_400_000
    assert expand(q, p, end - 3_600_000, end, {"home": "(h1|h2)"}) == (
        'SELECT count("seq") FROM "event" WHERE "home" =~ /^(h1|h2)$/ AND '  # noqa: S608
        f"time >= {start}ms and time <= {end}ms GROUP BY time(1h)")
