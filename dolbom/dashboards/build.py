"""The catalogue -> Grafana dashboard JSON (through the Grafana Foundation SDK) and the
provisioning files, written into one folder (``dashboards/`` in the repository).

Layout of the folder (what a stock Grafana reads with ``paths.provisioning`` pointed
at ``<folder>/provisioning``):

    provisioning/datasources/dolbom.yaml   InfluxDB, InfluxQL, a read-only user
    provisioning/dashboards/dolbom.yaml    a provider that loads <folder>/json
    json/<slug>.json                       one file per dashboard

The build is deterministic: same code, same bytes (sorted keys, fixed ids and uids).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    barchart,
    heatmap,
    stat,
    statetimeline,
    table,
    timeseries,
)
from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import heatmap as hm

from dolbom.dashboards import catalogue as cat
from dolbom.dashboards import model
from dolbom.dashboards.catalogue import DEFAULT_CONSOLE_URL
from dolbom.dashboards.influxql import DATASOURCE_TYPE, InfluxQueryBuilder, register

JSON_DIR = "json"
DATASOURCE_FILE = "provisioning/datasources/dolbom.yaml"
PROVIDER_FILE = "provisioning/dashboards/dolbom.yaml"
FOLDER_TITLE = "Dolbom"

DS_REF = dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid=model.DATASOURCE_UID)


def _panel_builder(p: model.Panel) -> Any:
    """The SDK builder of the panel's type, with what is specific to that type."""
    if p.kind == "timeseries":
        b = timeseries.Panel()
        if p.bars:
            b.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(60)
        if p.stacked:
            b.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
        if p.threshold_lines:
            b.thresholds_style(cb.GraphThresholdsStyleConfig().mode(
                cm.GraphThresholdsStyleMode.DASHED))
        return b
    if p.kind == "table":
        return table.Panel()
    if p.kind == "stat":
        return stat.Panel()
    if p.kind == "heatmap":
        # Each series (one per sensor type) is a row of cells: no bucketing by Grafana.
        return (heatmap.Panel().calculate(False)
                .rows_frame(heatmap.RowsHeatmapOptions().layout(cm.HeatmapCellLayout.UNKNOWN))
                .color(heatmap.HeatmapColorOptions().mode(hm.HeatmapColorMode.SCHEME)
                       .scheme("Greens")))
    if p.kind == "state-timeline":
        return statetimeline.Panel()
    if p.kind == "barchart":
        return barchart.Panel().x_field(p.x_field)
    raise ValueError(f"unknown panel kind {p.kind}")


def _panel(p: model.Panel, panel_id: int) -> Any:
    b = (_panel_builder(p).id(panel_id).title(p.title).description(p.description)
         .datasource(DS_REF).span(p.width).height(p.height)
         .max_data_points(model.MAX_DATA_POINTS))
    for t in p.targets:
        q = InfluxQueryBuilder(t.query).ref_id(t.ref).datasource(DS_REF)
        if t.table:
            q.result_format("table")
        if t.alias:
            q.alias(t.alias)
        b.with_target(q)
    if p.unit:
        b.unit(p.unit)
    if p.interval:
        b.interval(p.interval)
    if p.time_from:
        b.time_from(p.time_from)
    if p.thresholds:
        b.thresholds(db.ThresholdsConfig().mode(dm.ThresholdsMode.ABSOLUTE).steps(
            [dm.Threshold(value=v, color=c) for v, c in p.thresholds]))
    for tid, options in p.transformations:
        b.with_transformation(dm.DataTransformerConfig(id_val=tid, options=dict(options)))
    for name, props in p.overrides:
        b.override_by_name(name, [dm.DynamicConfigValue(id_val=k, value=v)
                                  for k, v in props.items()])
    if p.value_colors:
        b.mappings([dm.ValueMap(options={
            value: dm.ValueMappingResult(color=colour, index=i)
            for i, (value, colour) in enumerate(p.value_colors)})])
    if p.links:
        b.data_links([db.DashboardLink(link.title).type(dm.DashboardLinkType.LINK)
                      .url(link.url).target_blank(True) for link in p.links])
    return b


def _variable(v: model.Variable) -> db.QueryVariable:
    b = (db.QueryVariable(v.name).label(v.label).description(v.description)
         .query(v.query).datasource(DS_REF).refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
         .sort(dm.VariableSort.ALPHABETICAL_ASC)
         .allow_custom_value(False))  # only the ids InfluxDB offers, nothing typed in
    if v.multi:
        b.multi(True)
    if v.include_all:
        b.include_all(True)
    return b


def dashboard_json(d: model.Dashboard) -> dict[str, Any]:
    """One dashboard as the JSON Grafana stores (the SDK's model, encoded)."""
    b = (db.Dashboard(d.title).uid(d.uid).description(d.description).tags(list(d.tags))
         .time(d.time_from, "now").refresh(d.refresh).timezone("browser").editable()
         .tooltip(dm.DashboardCursorSync.CROSSHAIR))
    for v in d.variables:
        b.with_variable(_variable(v))
    current_row: db.Row | None = None
    for panel_id, p in enumerate(d.panels, start=1):
        if p.row is not None and current_row is None:
            current_row = db.Row(p.row).id(100 + panel_id)
            b.with_row(current_row)
        b.with_panel(_panel(p, panel_id))
    # Through the SDK's model once more: the JSON is exactly what its types encode
    # (defaults of each panel type's field config filled in as the SDK fills them).
    register_default_plugins()
    register()
    return to_plain(dm.Dashboard.from_json(to_plain(b.build())))


def to_plain(obj: object) -> dict[str, Any]:
    plain: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(obj))
    return plain


def datasource_yaml() -> str:
    """Grafana datasource provisioning: InfluxQL with a read-only InfluxDB user.

    The URL, database, user and password come from the environment of Grafana
    (provisioning files expand ``$VAR``), so the same file serves every centre: each
    points its Grafana at its own database with its own read-only user (docs).
    """
    return f"""\
# Written by `dolbom dashboards build`: do not edit, rebuild.
apiVersion: 1
datasources:
  - name: {model.DATASOURCE_NAME}
    uid: {model.DATASOURCE_UID}
    type: {DATASOURCE_TYPE}
    access: proxy
    url: ${{DOLBOM_GRAFANA_INFLUX_URL}}
    # READ only, on this database only (InfluxDB: GRANT READ ON <db> TO <user>).
    user: ${{DOLBOM_GRAFANA_INFLUX_USER}}
    jsonData:
      dbName: ${{DOLBOM_GRAFANA_INFLUX_DB}}
      httpMode: GET
      timeInterval: {model.DATASOURCE_MIN_INTERVAL}
    secureJsonData:
      password: ${{DOLBOM_GRAFANA_INFLUX_PASSWORD}}
    editable: false
    isDefault: true
"""


def provider_yaml(json_dir: str) -> str:
    return f"""\
# Written by `dolbom dashboards build`: do not edit, rebuild.
apiVersion: 1
providers:
  - name: dolbom
    folder: {FOLDER_TITLE}
    type: file
    disableDeletion: true
    allowUiUpdates: false
    updateIntervalSeconds: 60
    options:
      path: {json_dir}
"""


def files(console_url: str = DEFAULT_CONSOLE_URL,
          json_path: str = "${DOLBOM_DASHBOARDS_DIR}/json") -> dict[str, str]:
    """Every file of the folder: relative path -> text."""
    out: dict[str, str] = {
        DATASOURCE_FILE: datasource_yaml(),
        PROVIDER_FILE: provider_yaml(json_path),
    }
    for d in cat.all_dashboards(console_url):
        out[f"{JSON_DIR}/{d.slug}.json"] = json.dumps(
            dashboard_json(d), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    return out


def write(out_dir: Path, contents: Mapping[str, str]) -> list[Path]:
    written = []
    for rel, text in sorted(contents.items()):
        path = out_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
