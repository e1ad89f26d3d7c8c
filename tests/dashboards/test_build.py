"""The built dashboards: committed and current, deterministic, valid against the
Grafana Foundation SDK's dashboard types, and each panel complete."""

from __future__ import annotations

import enum
import json
import types
import typing
from pathlib import Path
from typing import Any

import pytest
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import dashboard as dm

from dolbom.dashboards import catalogue as cat
from dolbom.dashboards import model
from dolbom.dashboards.build import dashboard_json, files, to_plain
from dolbom.dashboards.cli import DEFAULT_JSON_PATH
from dolbom.dashboards.influxql import InfluxQuery, register

REPO = Path(__file__).resolve().parents[2]
COMMITTED = REPO / "dashboards"
DASHBOARDS = cat.all_dashboards(cat.DEFAULT_CONSOLE_URL)


def test_committed_folder_is_what_build_writes() -> None:
    """dashboards/ holds exactly the files `dolbom dashboards build` writes today:
    rebuild and commit when this fails."""
    expected = files(cat.DEFAULT_CONSOLE_URL, DEFAULT_JSON_PATH)
    on_disk = {str(p.relative_to(COMMITTED)): p.read_text(encoding="utf-8")
               for p in COMMITTED.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(expected)
    stale = [name for name, text in expected.items() if on_disk[name] != text]
    assert not stale, f"stale: {stale}; run `dolbom dashboards build --out dashboards`"


def test_two_builds_are_byte_identical() -> None:
    """Same code, same bytes: stable ids, uids and key order."""
    assert files() == files()


def test_at_least_four_dashboards_with_stable_unique_uids() -> None:
    """Four dashboards, uids fixed in code (a rebuild never breaks a bookmark)."""
    uids = [d.uid for d in DASHBOARDS]
    assert len(uids) >= 4 and len(set(uids)) == len(uids)
    assert uids == ["dolbom-my-homes", "dolbom-one-home", "dolbom-centre",
                    "dolbom-operations"]


# ------------------------------------------------------------------------ SDK schema
def _check(value: Any, hint: Any, path: str) -> None:
    """``value`` (decoded by the SDK) has the type the SDK's model declares."""
    origin = typing.get_origin(hint)
    if hint is Any or hint is object:
        return
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in typing.get_args(hint):
            try:
                _check(value, option, path)
                return
            except AssertionError as e:
                errors.append(str(e))
        raise AssertionError(f"{path}: {value!r} is none of {hint}: {errors}")
    if hint is type(None):
        assert value is None, f"{path}: {value!r} is not None"
        return
    if origin is typing.Literal:
        assert value in typing.get_args(hint), f"{path}: {value!r} not in {hint}"
        return
    if origin is list:
        assert isinstance(value, list), f"{path}: not a list"
        for i, item in enumerate(value):
            _check(item, typing.get_args(hint)[0], f"{path}[{i}]")
        return
    if origin is dict:
        assert isinstance(value, dict), f"{path}: not a dict"
        return
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        assert value in set(hint), f"{path}: {value!r} not a {hint.__name__}"
        return
    if hint is float:
        assert isinstance(value, int | float) and not isinstance(value, bool), path
        return
    if isinstance(hint, type) and hasattr(hint, "to_json"):
        if isinstance(value, dict):  # left undecoded by the SDK (transformations): decode
            value = hint.from_json(value)
            assert value.to_json() is not None
        assert isinstance(value, hint), f"{path}: {type(value).__name__} is not {hint}"
        hints = typing.get_type_hints(type(value))
        for name, sub in hints.items():
            if hasattr(value, name):
                _check(getattr(value, name), sub, f"{path}.{name}")
        return
    if isinstance(hint, type):
        assert isinstance(value, hint), f"{path}: {value!r} is not {hint.__name__}"


@pytest.mark.parametrize("d", DASHBOARDS, ids=[d.slug for d in DASHBOARDS])
def test_json_is_a_valid_sdk_dashboard(d: model.Dashboard) -> None:
    """The JSON decodes into the SDK's Dashboard model with every field of its declared
    type, and encodes back to the same JSON (nothing the schema does not know)."""
    register_default_plugins()
    register()
    data = dashboard_json(d)
    model = dm.Dashboard.from_json(data)
    _check(model, dm.Dashboard, "dashboard")
    assert to_plain(model) == data
    targets = [t for p in model.panels or [] if isinstance(p, dm.Panel)
               for t in p.targets or []]
    assert targets and all(isinstance(t, InfluxQuery) for t in targets)


@pytest.mark.parametrize("d", DASHBOARDS, ids=[d.slug for d in DASHBOARDS])
def test_every_panel_has_title_words_and_a_bounded_influxql_target(d: model.Dashboard) -> None:
    """Each panel: a title, a description in a sentence or more, and InfluxQL targets on
    the Dolbom datasource, every one bounded by $timeFilter."""
    data = dashboard_json(d)
    panels = [p for p in data["panels"] if p["type"] != "row"]
    assert len(panels) == len(d.panels)
    for p in panels:
        assert p["title"] and len(p["description"].split()) >= 8, p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"] == {"type": "influxdb", "uid": model.DATASOURCE_UID}
            assert t["rawQuery"] is True and "$timeFilter" in t["query"], t["query"]
            # every SELECT, subqueries too, is bounded
            assert t["query"].count("$timeFilter") >= t["query"].count("SELECT"), t["query"]


def test_variables_come_from_show_tag_values() -> None:
    """Site and home lists are InfluxDB tag values (opaque ids), never typed-in names."""
    for d in DASHBOARDS:
        data = dashboard_json(d)
        variables = data["templating"]["list"]
        assert [v["name"] for v in variables][:1] == ["site"]
        for v in variables:
            assert v["type"] == "query" and v["query"].startswith("SHOW TAG VALUES")


def test_long_ranges_read_the_hourly_rollup() -> None:
    """Panels over 90 days read the 1-hour rollup policy, not raw points."""
    long = [p for d in DASHBOARDS for p in d.panels if p.time_from == "90d"]
    assert long
    for p in long:
        assert all('"rollup"."reading_1h"' in t.query for t in p.targets), p.key


def test_provisioning_points_at_a_read_only_influxql_source() -> None:
    """The datasource file: InfluxDB, InfluxQL, the read-only user from the environment;
    the provider loads the json folder."""
    f = files()
    ds = f["provisioning/datasources/dolbom.yaml"]
    assert "type: influxdb" in ds and f"uid: {model.DATASOURCE_UID}" in ds
    assert "user: ${DOLBOM_GRAFANA_INFLUX_USER}" in ds
    assert "password: ${DOLBOM_GRAFANA_INFLUX_PASSWORD}" in ds
    assert "version: Flux" not in ds
    prov = f["provisioning/dashboards/dolbom.yaml"]
    assert "type: file" in prov and "path: ${DOLBOM_DASHBOARDS_DIR}/json" in prov
    assert json.loads(f["json/centre.json"])["uid"] == "dolbom-centre"
