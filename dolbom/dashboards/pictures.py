"""Pictures of the dashboards for docs/dashboards.md, drawn with matplotlib from the
real answers of each panel's query over a simulated care home in a real InfluxDB.

    python -m dolbom.dashboards.pictures --out docs/img

Starts its own InfluxDB 1.6 (``dolbom.stack``), loads ``dolbom.dashboards.sample``,
runs every target exactly as the tests do (``dolbom.dashboards.expand``), as the
read-only dashboard user, and draws one PNG per dashboard: ``dashboards-<slug>.png``.
A sketch of what Grafana shows, not a screenshot (no Grafana runs here).
"""

from __future__ import annotations

import argparse
import secrets
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from dolbom.dashboards import catalogue as cat
from dolbom.dashboards.expand import (
    Selection,
    expand,
    expand_variables,
    parse_duration,
    variable_text,
)
from dolbom.dashboards.sample import DETAILED_HOME, CareHome, load
from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.stack.influx import InfluxDB
from dolbom.stack.proc import runtime_root


@dataclass(frozen=True)
class Series:
    label: str
    columns: list[str]
    values: list[list[Any]]
    tags: dict[str, str]


def _values(reader: InfluxHTTP, d: cat.Dashboard) -> dict[str, str]:
    values: dict[str, str] = {}
    for var in d.variables:
        opts = sorted(str(r["value"]) for r in
                      reader.rows(expand_variables(var.query, values), "care"))
        if d.slug == "one-home" and var.name == "home":
            sel = Selection((DETAILED_HOME,))
        elif var.include_all:
            sel = Selection(all=True)
        else:
            sel = Selection((opts[0],))
        values[var.name] = variable_text(var, sel, opts)
    return values


def panel_series(reader: InfluxHTTP, d: cat.Dashboard, p: cat.Panel,
                 home: CareHome) -> list[Series]:
    values = _values(reader, d)
    out: list[Series] = []
    for t in p.targets:
        q = expand(t.query, p, home.start_ms, home.end_ms, values)
        for s in reader.query(q, "care")[0].get("series", []):
            tags = s.get("tags") or {}
            label = ", ".join(tags.values()) if tags else ""
            out.append(Series(label, s["columns"], s["values"], tags))
    return out


def _t(ms: Any) -> datetime:
    return datetime.fromtimestamp(int(ms) / 1000, UTC)


def _day(ms: Any) -> float:
    """A time as matplotlib's date number (days since its epoch, 1970-01-01)."""
    return float(mdates.date2num(_t(ms)))


def _numeric(s: Series) -> list[tuple[str, list[float], list[float | None]]]:
    times = [_day(v[0]) for v in s.values]  # matplotlib's date numbers
    lines = []
    for i, col in enumerate(s.columns[1:], start=1):
        ys = [v[i] if isinstance(v[i], int | float) else None for v in s.values]
        name = " ".join(x for x in (s.label, col) if x) if len(s.columns) > 2 else (
            s.label or col)
        lines.append((name, times, ys))
    return lines


def _timeseries(ax: Axes, p: cat.Panel, series: Sequence[Series]) -> None:
    threshold_rows = [s for s in series if s.columns == ["time", "usual", "busy"]]
    bottom: dict[float, float] = {}
    for s in series:
        if s in threshold_rows:
            continue
        for name, xs, ys in _numeric(s):
            if p.bars:
                base = [bottom.get(x, 0.0) if p.stacked else 0.0 for x in xs]
                ax.bar(xs, [y or 0 for y in ys], bottom=base,
                       width=0.035 if len(xs) > 40 else 0.8, label=name,
                       alpha=0.85 if p.stacked else 0.7)
                if p.stacked:
                    for x, b, y in zip(xs, base, ys, strict=True):
                        bottom[x] = b + (y or 0)
            else:
                ax.plot(xs, [float("nan") if y is None else y for y in ys], label=name,
                        lw=1, marker="o" if len(xs) < 20 else None, ms=3)
    for s in threshold_rows:  # the usual band: Grafana's "config from query results"
        usual, busy = s.values[0][1], s.values[0][2]
        ax.axhline(usual, color="tab:green", ls="--", lw=1, label=f"usual {usual:.1f}")
        ax.axhline(busy, color="tab:orange", ls="--", lw=1, label=f"busy {busy:.1f}")
    if p.threshold_lines:
        for v, c in p.thresholds:
            if v is not None:
                ax.axhline(v, color=c, ls=":", lw=1)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))
    handles = ax.get_legend_handles_labels()[0]
    if 0 < len(handles) <= 8:
        ax.legend(fontsize=6, loc="upper left")


def _heatmap(ax: Axes, series: Sequence[Series]) -> None:
    rows = [s for s in series if s.values]
    xs = [_t(v[0]) for v in rows[0].values]
    grid = [[v[1] or 0 for v in s.values] for s in rows]
    ax.imshow(grid, aspect="auto", cmap="Greens", interpolation="nearest",
              extent=(mdates.date2num(xs[0]), mdates.date2num(xs[-1]), len(rows), 0))
    ax.set_yticks([i + 0.5 for i in range(len(rows))], [s.label for s in rows], fontsize=7)
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))


def _state_timeline(ax: Axes, p: cat.Panel, series: Sequence[Series], end_ms: int) -> None:
    """Each value lasts until the next, the last one until the end of the range (as
    Grafana draws a state timeline)."""
    colours = {"in": "tab:blue", "out": "tab:orange", "open": "tab:red",
               "closed": "tab:green", **{v: f"tab:{c}" for v, c in p.value_colors}}
    for i, s in enumerate(series):
        vals = s.values
        for j, v in enumerate(vals):
            start = mdates.date2num(_t(v[0]))
            end = mdates.date2num(_t(vals[j + 1][0] if j + 1 < len(vals) else end_ms))
            ax.broken_barh([(start, end - start)], (i + 0.1, 0.8),
                           color=colours.get(str(v[1]), "grey"))
    ax.set_yticks([i + 0.5 for i in range(len(series))], [s.label for s in series],
                  fontsize=7)
    ax.xaxis_date()
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d"))


def _cell(v: Any, col: str) -> str:
    if col == "time" and v is not None:
        return _t(v).strftime("%m-%d %H:%M")
    if col.endswith("_s") and isinstance(v, int | float):
        return f"{v / 3600:.1f} h"
    if isinstance(v, float):
        return f"{v:.1f}"
    return "" if v is None else str(v)


def _merged(series: Sequence[Series]) -> tuple[list[str], list[list[Any]]]:
    """Rows joined on their tags across targets (Grafana's "merge" transformation)."""
    header: list[str] = list(series[0].tags)
    by_key: dict[tuple[str, ...], dict[str, Any]] = {}
    for s in series:
        for col in s.columns:
            if col not in header and not (col == "time" and "time" in header):
                header.append(col)
        for row in s.values:
            key = tuple(s.tags.values()) if s.tags else (str(row[0]),)
            cell = by_key.setdefault(key, dict(s.tags))
            for col, v in zip(s.columns, row, strict=True):
                cell.setdefault(col, v)
    return header, [[c.get(h) for h in header] for c in by_key.values()]


def _latest_open(header: list[str], rows: list[list[Any]]) -> list[list[Any]]:
    """Each alert's latest transition, resolved ones left out (the panel's "group by"
    and "filter by value" transformations)."""
    at = {h: i for i, h in enumerate(header)}
    last: dict[Any, list[Any]] = {}
    for r in sorted(rows, key=lambda r: r[at["time"]]):
        last[r[at["alert_id"]]] = r
    return [r for r in last.values() if r[at["kind"]] not in ("resolved", "auto_resolved")]


def _table(ax: Axes, p: cat.Panel, series: Sequence[Series], limit: int = 9) -> None:
    ax.axis("off")
    if not series:
        return
    header, rows = _merged(series)
    if p.key == "homes-open-alerts":
        rows = _latest_open(header, rows)
    hidden = {("time" if k == "Time" else k) for tid, o in p.transformations
              if tid == "organize" for k, v in o.get("excludeByName", {}).items() if v}
    keep = [i for i, h in enumerate(header) if h not in hidden]
    header, rows = [header[i] for i in keep], [[r[i] for i in keep] for r in rows]
    shown = [[_cell(v, h) for v, h in zip(r, header, strict=True)] for r in rows][-limit:]
    tbl = ax.table(cellText=shown or [["(none open)"] + [""] * (len(header) - 1)],
                   colLabels=header, loc="upper center", cellLoc="left")
    tbl.auto_set_font_size(False)
    tbl.set_fontsize(6)
    tbl.scale(1, 1.1)


def _stat(ax: Axes, p: cat.Panel, series: Sequence[Series]) -> None:
    ax.axis("off")
    parts = []
    for s in series:
        row = s.values[-1]
        for col, v in zip(s.columns[1:], row[1:], strict=True):
            if p.key == "ops-data-freshness":
                parts.append(f"{_t(row[0]):%m-%d %H:%M} UTC")
            else:
                parts.append(f"{col}\n{v:.1f}{'%' if p.unit == 'percent' else ''}")
    ax.text(0.5, 0.5, "\n".join(dict.fromkeys(parts)), ha="center", va="center",
            fontsize=12, transform=ax.transAxes)


def _barchart(ax: Axes, series: Sequence[Series]) -> None:
    labels = [s.label for s in series]
    ax.bar(labels, [s.values[0][1] for s in series], color="tab:blue")
    ax.tick_params(axis="x", labelsize=7)


def draw(reader: InfluxHTTP, d: cat.Dashboard, home: CareHome, out: Path) -> Path:
    n = len(d.panels)
    cols = 2
    rows = (n + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(12, 3.1 * rows), squeeze=False)
    for ax, p in zip(axes.flat, d.panels, strict=False):
        series = panel_series(reader, d, p, home)
        ax.set_title(p.title + (f"  (last {p.time_from})" if p.time_from else ""),
                     fontsize=9, loc="left")
        ax.tick_params(labelsize=7)
        if p.kind == "timeseries":
            _timeseries(ax, p, series)
            if p.time_from:  # the panel's own range, even where no data was kept yet
                ax.set_xlim(_t(home.end_ms - parse_duration(p.time_from)), _t(home.end_ms))
        elif p.kind == "heatmap":
            _heatmap(ax, series)
        elif p.kind == "state-timeline":
            _state_timeline(ax, p, series, home.end_ms)
        elif p.kind == "table":
            _table(ax, p, series)
        elif p.kind == "stat":
            _stat(ax, p, series)
        else:
            _barchart(ax, series)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(f"{d.title} (simulated homes, real InfluxDB answers)",
                 fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    path = out / f"dashboards-{d.slug}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="pictures-", dir=runtime_root()))
    work.chmod(0o711)
    users = InfluxUsers(*((name, secrets.token_urlsafe(18))
                          for name in ("admin", "ingest", "dashboard")))
    srv = InfluxDB(work / "influx")
    try:
        srv.start()
        srv.bootstrap(users, "care")
        home = load(srv.url, users.admin, users.ingest, "care", Path(tempfile.mkdtemp()),
                    end_ms=int(time.time() * 1000))
        reader = InfluxHTTP(srv.url, *users.dashboard)
        for d in cat.all_dashboards(cat.DEFAULT_CONSOLE_URL):
            print(draw(reader, d, home, args.out))
    finally:
        srv.stop()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
