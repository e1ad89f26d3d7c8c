"""The evaluation report: Markdown for people, JSON for tools (``--out DIR``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from dolbom.eval.score import Score, incident_rates, score
from dolbom.eval.truth import DETECTED, Truth

SYSTEMS = ("dolbom", "naive_12h", "naive_24h")
TITLES = {"dolbom": "Dolbom", "naive_12h": "naive 12 h timer", "naive_24h": "naive 24 h timer"}


def build(command: str, truth: Truth, systems: dict[str, list[dict[str, Any]]],
          extra: dict[str, Any]) -> dict[str, Any]:
    """The report as a JSON-able document."""
    scores: dict[str, Score] = {name: score(truth, alerts) for name, alerts in systems.items()}
    return {
        "command": command,
        "population": {"homes": truth.homes, "days": round(
            (truth.end_ms - truth.start_ms) / 86_400_000, 2), "seed": truth.seed,
            "home_days": round(truth.home_days, 1), "start_ms": truth.start_ms,
            "wandering_flagged": len(truth.wandering), **extra},
        "incident_rates": incident_rates(truth),
        "systems": {name: s.summary() for name, s in scores.items()},
    }


def _f(x: Any, pct: bool = False) -> str:
    if x is None:
        return "–"
    if pct:
        return f"{100 * x:.1f} %"
    if isinstance(x, float):
        return f"{x:.2f}"
    return str(x)


def markdown(doc: dict[str, Any]) -> str:
    pop, sy = doc["population"], doc["systems"]
    names = [n for n in SYSTEMS if n in sy]
    head = "| | " + " | ".join(TITLES[n] for n in names) + " | target |"
    sep = "|---|" + "---|" * (len(names) + 1)
    out = [
        "# Care-outcome evaluation", "",
        "Produced by:", "", f"    {doc['command']}", "",
        f"Population: {pop['homes']:,} homes × {pop['days']:g} days = "
        f"{pop['home_days']:,.0f} home-days, seed {pop['seed']}"
        + (f", {pop['messages']:,} messages "
           f"({pop['messages'] / max(1.0, pop['home_days']):,.0f} per home-day)"
           if pop.get("messages") else "")
        + f"; {pop.get('wandering_flagged', 0)} residents flagged for wandering."
        + (f" Run time {pop['seconds'] / 60:.1f} min with {pop.get('workers', 1)} worker "
           "process(es)." if pop.get("seconds") else ""),
        "",
        "Rates are per care worker per day at 363 homes (count / home-days × 363). "
        "How truth is scored: docs/evaluation.md.", "",
        "## Headline", "", head, sep,
    ]

    def row(label: str, key: str, target: str, pct: bool = False, sub: str | None = None) -> None:
        vals = [sy[n][sub][key] if sub else sy[n][key] for n in names]
        out.append(f"| {label} | " + " | ".join(_f(v, pct) for v in vals) + f" | {target} |")

    row("welfare + technical alerts reaching a care worker", "welfare_technical_per_worker_day",
        "≤ 3")
    row("… of which false", "false_per_worker_day", "")
    row("welfare alerts", "welfare_per_worker_day", "")
    row("technical alerts", "technical_per_worker_day", "")
    row("welfare precision", "welfare_precision", "≥ 50 %", pct=True)
    row("welfare precision, untold absences counted true",
        "welfare_precision_untold_absence_true", "", pct=True)
    row("technical precision", "technical_precision", "", pct=True)
    row("immobile residents flagged within 12 h", "within_12h", "≥ 80 %", pct=True,
        sub="immobile")
    row("immobile residents flagged within 24 h", "within_24h", "100 %", pct=True,
        sub="immobile")
    row("immobile residents missed", "missed", "0", sub="immobile")
    row("watch-list items", "watch_per_worker_day", "")
    row("life-safety alerts reaching a care worker", "life_safety_per_worker_day", "")
    rates = doc["incident_rates"]
    out += ["", "## What happened in the population", "",
            f"{rates['homes_with_welfare_truth']} of {rates['homes']} homes had at least one "
            "real welfare incident or condition.", "",
            "| truth item | count | per 1,000 home-days |", "|---|---|---|"]
    for t, n in rates["counts"].items():
        out.append(f"| {t} | {n} | {rates['per_1000_home_days'][t]} |")
    out += ["", "## Detection delay", "",
            "From the incident's start to the first raise or notify to a person for that home "
            "(hours).", ""]
    for n in names:
        out += [f"### {TITLES[n]}", "",
                "| incident | n | missed | p50 | p90 | max | ≤ 1 h | ≤ 12 h | ≤ 24 h | "
                "first rule |", "|---|---|---|---|---|---|---|---|---|---|"]
        delays = sy[n]["delays"]
        for t in DETECTED:
            if t not in delays:
                continue
            d = delays[t]
            rules = ", ".join(f"{r} {c}" for r, c in d["first_rule"].items())
            out.append(f"| {t} | {d['incidents']} | {d['missed']} | {_f(d['p50_h'])} | "
                       f"{_f(d['p90_h'])} | {_f(d['max_h'])} | {_f(d['within_1h'], True)} | "
                       f"{_f(d['within_12h'], True)} | {_f(d['within_24h'], True)} | "
                       f"{rules} |")
        away = {t: d["away_told"] for t, d in delays.items() if d.get("away_told")}
        if away:
            out += ["", "Not counted above: rooms hot or cold while the resident was away or "
                    "in hospital and the system was told (welfare rules pause by design): "
                    + ", ".join(f"{t} {k}" for t, k in away.items()) + "."]
        out.append("")
    out += ["## False alerts by cause", "",
            "Welfare and technical alerts reaching a care worker that no real item justifies, "
            "by rule and by the nearest real explanation in the home.", ""]
    for n in names:
        rows = sy[n]["false_by_cause"]
        out += [f"### {TITLES[n]}", "", "| rule | cause | count | per worker-day |",
                "|---|---|---|---|"]
        out += [f"| {r['rule']} | {r['cause']} | {r['count']} | {r['per_worker_day']:.3f} |"
                for r in rows[:25]]
        if len(rows) > 25:
            out.append(f"| … | {len(rows) - 25} more in report.json | | |")
        out.append("")
    out += ["## True alerts by cause (Dolbom)", "", "| rule | real item | count |",
            "|---|---|---|"]
    out += [f"| {r['rule']} | {r['cause']} | {r['count']} |"
            for r in sy[names[0]]["true_by_cause"]]
    out += ["", "## Week by week", "",
            "Welfare + technical alerts reaching a care worker, per worker per day "
            "(the rules learn each home's habits as the weeks go by).", "",
            "| week | " + " | ".join(TITLES[n] for n in names) + " |",
            "|---|" + "---|" * len(names)]
    weeks = sorted({w for n in names for w in sy[n]["weekly_per_worker_day"]}, key=int)
    for w in weeks:
        out.append(f"| {w} | " + " | ".join(
            _f(sy[n]["weekly_per_worker_day"].get(w)) for n in names) + " |")
    if pop.get("replay"):
        out += ["", "## Replay counters", "", "| counter | value |", "|---|---|"]
        out += [f"| {k} | {v:,} |" for k, v in pop["replay"].items()]
    return "\n".join(out) + "\n"


def write(directory: Path, doc: dict[str, Any]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.json").write_bytes(orjson.dumps(
        doc, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS))
    (directory / "report.md").write_text(markdown(doc), encoding="utf-8")
