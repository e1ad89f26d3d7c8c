"""Every panel's query, expanded as Grafana expands it, answers over a simulated care
home in the real InfluxDB 1.6 with the series and columns its panel expects."""

from __future__ import annotations

import re
from typing import Any

import pytest

from dolbom.dashboards import catalogue as cat
from dolbom.dashboards import model
from dolbom.dashboards.expand import Selection, expand, expand_variables, variable_text
from dolbom.dashboards.sample import DETAILED_HOME, CareHome
from dolbom.influx.admin import InfluxHTTP
from dolbom.protocol.topics import is_valid_id

DASHBOARDS = cat.all_dashboards(cat.DEFAULT_CONSOLE_URL)
TARGETS = [(d, p, t) for d in DASHBOARDS for p in d.panels for t in p.targets]
# What a person picks on each dashboard: the detailed home on "One home", all homes or
# all sites where the variable allows it, else the first option.
PICKS: dict[tuple[str, str], Selection] = {
    ("one-home", "home"): Selection((DETAILED_HOME,)),
}


def options(reader: InfluxHTTP, var: model.Variable, values: dict[str, str]) -> list[str]:
    """The variable's values, queried as Grafana queries them (after the ones before it)."""
    rows = reader.rows(expand_variables(var.query, values), "care")
    return sorted(str(r["value"]) for r in rows)


def variable_values(reader: InfluxHTTP, d: model.Dashboard) -> dict[str, str]:
    values: dict[str, str] = {}
    for var in d.variables:
        opts = options(reader, var, values)
        sel = PICKS.get((d.slug, var.name)) or (
            Selection(all=True) if var.include_all else Selection((opts[0],)))
        values[var.name] = variable_text(var, sel, opts)
    return values


def has_values(series: list[dict[str, Any]]) -> bool:
    """Some value other than null or 0 (a fill(0) answer over nothing is all zeros)."""
    return any(v not in (None, 0, 0.0)
               for s in series for row in s["values"] for v in row[1:])


@pytest.mark.parametrize(("d", "p", "t"), TARGETS,
                         ids=[f"{d.slug}/{p.key}/{t.ref}" for d, p, t in TARGETS])
def test_panel_query_answers_with_its_columns(care_home: CareHome, grafana_reader: InfluxHTTP,
                                              d: model.Dashboard, p: model.Panel,
                                              t: model.Target) -> None:
    """The expanded query runs as the read-only user and returns the panel's columns."""
    q = expand(t.query, p, care_home.start_ms, care_home.end_ms,
               variable_values(grafana_reader, d))
    assert not re.search(r"\$\{?\w", q), q  # every variable and macro expanded
    results = grafana_reader.query(q, "care")
    series = results[0].get("series", [])
    assert series, f"no series for {q}"
    for s in series:
        assert s["columns"] == list(t.columns), q
        assert sorted(s.get("tags") or {}) == sorted(t.tags), q
    assert has_values(series), f"only empty values for {q}"


@pytest.mark.parametrize("d", DASHBOARDS, ids=[d.slug for d in DASHBOARDS])
def test_variables_offer_opaque_ids_only(care_home: CareHome, grafana_reader: InfluxHTTP,
                                         d: model.Dashboard) -> None:
    """Site and home variables list ids of the contract's id form, never a name."""
    values: dict[str, str] = {}
    for var in d.variables:
        opts = options(grafana_reader, var, values)
        assert opts, var.query
        assert all(is_valid_id(o) for o in opts), opts
        values[var.name] = variable_text(var, Selection(all=True), opts) \
            if var.include_all else opts[0]
    sites = options(grafana_reader, model.site_var(), {})
    assert sites == care_home.sites
