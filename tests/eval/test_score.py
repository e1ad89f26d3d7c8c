"""The scorer and the naive timers, on small hand-written truth and alert tables."""

from __future__ import annotations

from typing import Any

import pytest

from dolbom.eval.naive import naive_alerts
from dolbom.eval.report import build, markdown
from dolbom.eval.score import CASELOAD, POST_MS, PRE_MS, habit_cause, judge, score
from dolbom.eval.truth import ABSENCE, CONDITION, FAULT, INCIDENT, VISIT, Item, Truth

H = 3_600_000
T0 = 1_000 * H
DAY = 24 * H


def item(cat: str, kind: str, a_h: float, b_h: float, device: str | None = None,
         told: bool | None = None, home: str = "h1") -> Item:
    return Item("s", home, cat, kind, T0 + int(a_h * H), T0 + int(b_h * H), device, told)


def alert(t_h: float, rule: str, klass: str = "welfare", action: str = "raise",
          to: tuple[str, ...] = ("care_worker",), device: str | None = None,
          home: str = "h1") -> dict[str, Any]:
    a: dict[str, Any] = {"t_ms": T0 + int(t_h * H), "site": "s", "home": home, "rule": rule,
                         "class": klass, "priority": "medium", "action": action,
                         "to": list(to), "reasons": []}
    if device:
        a["device"] = device
    return a


def truth(*items: Item, homes: int = 1, days: int = 1) -> Truth:
    return Truth(1, T0, T0 + days * DAY, homes, items,
                 habits={"h1": ("early riser", "rarely cooks")})


@pytest.mark.parametrize(("a", "items", "ok", "cause"), [
    (alert(14, "inactivity"), [item(INCIDENT, "collapse_still", 2, 40)], True,
     "collapse_still"),
    (alert(41, "inactivity"), [item(INCIDENT, "collapse_still", 2, 40)], True,
     "collapse_still"),  # within POST after the resident was found
    (alert(43, "inactivity"), [item(INCIDENT, "collapse_still", 2, 40)], False,
     "no incident"),
    (alert(14, "heat"), [item(INCIDENT, "collapse_still", 2, 40)], False, "collapse_still"),
    (alert(14, "heat"), [item(CONDITION, "hot_room", 13.8, 18)], True, "hot_room"),
    (alert(13.6, "heat"), [item(CONDITION, "hot_room", 14, 18)], True, "hot_room"),  # PRE
    (alert(14, "heat"), [item(FAULT, "sun_spike", 13, 15, "d1")], False, "sun_spike"),
    (alert(14, "cold"), [item(CONDITION, "hot_room", 13, 15)], False, "hot_room"),
    (alert(30, "inactivity"), [item(ABSENCE, "hospital", 2, 100, told=False)], False,
     "hospital (not told)"),
    (alert(30, "inactivity"), [item(ABSENCE, "hospital", 2, 100, told=True),
                               item(VISIT, "visit", 29, 31)], False, "hospital (told)"),
    (alert(30, "no_power_use"), [item(INCIDENT, "no_food", 0, 72)], True, "no_food"),
    (alert(30, "welfare_concern"), [item(CONDITION, "decline", 0, 700)], True, "decline"),
    (alert(2, "night_exit"), [item(INCIDENT, "night_wandering", 1.5, 2.5)], True,
     "night_wandering"),
    (alert(5, "device_lost", "technical", device="d1"), [item(FAULT, "pir_dead", 1, 99, "d1")],
     True, "pir_dead"),
    (alert(5, "device_lost", "technical", device="d2"), [item(FAULT, "pir_dead", 1, 99, "d1")],
     False, "pir_dead"),
    (alert(5, "device_lost", "technical", device="d2"),
     [item(FAULT, "gateway_outage", 4, 6, "gw")], True, "gateway_outage"),
    (alert(5, "battery_low", "technical"), [item(FAULT, "battery_low", 1, 99, "d3")], True,
     "battery_low"),
    (alert(5, "device_lost", "technical", device="d1"), [], False, "no incident"),
])
def test_judge_table(a: dict[str, Any], items: list[Item], ok: bool, cause: str) -> None:
    """An alert is TRUE only when a real item that justifies its rule overlaps its window."""
    assert judge(a, items) == (ok, cause)


def test_windows_are_what_the_docs_say() -> None:
    """The window is 30 min before an item's start to 2 h after its end."""
    assert (PRE_MS, POST_MS) == (30 * 60_000, 2 * H)


@pytest.mark.parametrize(("rule", "cause"), [
    ("out_of_bed_at_night", "no incident (early riser)"),
    ("no_power_use", "no incident (rarely cooks)"),
    ("no_door_use", "no incident"),
])
def test_habit_cause(rule: str, cause: str) -> None:
    """A false alert with nothing behind it is put down to the habit its rule trips on."""
    assert habit_cause(rule, ("early riser", "rarely cooks")) == cause


def test_only_raise_and_notify_to_a_care_worker_count() -> None:
    """Updates, resolves, operator-only alerts and watch-list items do not reach a worker."""
    t = truth(homes=363)
    s = score(t, [alert(1, "inactivity"), alert(2, "inactivity", action="notify"),
                  alert(3, "inactivity", action="update"),
                  alert(4, "inactivity", action="resolve"),
                  alert(5, "device_lost", "technical", to=("operator",)),
                  alert(6, "welfare_concern", action="watch", to=("watch_list",)),
                  alert(7, "button", "life_safety", to=("responder", "care_worker"))])
    out = s.summary()
    assert out["welfare_technical_per_worker_day"] == 2.0  # 2 alerts / 363 home-days x 363
    assert out["false_per_worker_day"] == 2.0
    assert out["watch_per_worker_day"] == 1.0
    assert out["life_safety_per_worker_day"] == 1.0
    assert CASELOAD == 363


def test_precision_and_untold_absences() -> None:
    """Precision counts untold absences false, and the second figure counts them true."""
    t = truth(item(INCIDENT, "collapse_still", 2, 40), item(ABSENCE, "away", 50, 90, told=False),
              days=5)
    s = score(t, [alert(14, "inactivity"), alert(70, "inactivity"), alert(100, "no_door_use")])
    out = s.summary()
    assert out["welfare_precision"] == pytest.approx(1 / 3, abs=1e-3)
    assert out["welfare_precision_untold_absence_true"] == pytest.approx(2 / 3, abs=1e-3)
    causes = {(r["rule"], r["cause"]) for r in out["false_by_cause"]}
    assert causes == {("inactivity", "away (not told)"), ("no_door_use", "no incident")}


@pytest.mark.parametrize(("alerts", "delay", "rule"), [
    ([alert(14, "inactivity")], 12.0, "inactivity"),
    ([alert(1, "inactivity"), alert(26, "inactivity", action="notify")], 24.0, "inactivity"),
    ([alert(14, "device_lost", "technical", to=("operator",)), alert(20, "welfare_concern")],
     18.0, "welfare_concern"),
    ([alert(41, "inactivity")], None, None),  # after the resident was found: missed
    ([], None, None),
])
def test_detection_delay(alerts: list[dict[str, Any]], delay: float | None,
                         rule: str | None) -> None:
    """Delay is to the first raise or notify to a person at or after the start, before the end."""
    s = score(truth(item(INCIDENT, "fall_still", 2, 40), days=3), alerts)
    d = s.delays["fall_still"]
    assert d.delays_h == [delay]
    assert list(d.by_rule) == ([rule] if rule else [])
    summary = s.summary()["immobile"]
    assert summary["missed"] == (delay is None)


def test_hot_room_is_detected_only_by_the_heat_rule() -> None:
    """An unrelated alert during a hot room does not count as its detection."""
    s = score(truth(item(CONDITION, "hot_room", 10, 16)),
              [alert(11, "inactivity"), alert(12, "heat")])
    assert s.delays["hot_room"].delays_h == [2.0]


def test_hot_room_told_a_little_early_is_detected_at_once() -> None:
    """A sensor reading a little warmer than the room crosses the limit before the room: an
    alert up to PRE_MS before the start detects it with delay 0; an unrelated earlier
    one (yesterday's) does not."""
    s = score(truth(item(CONDITION, "hot_room", 10, 16), days=2),
              [alert(10 - PRE_MS / H / 2, "heat")])
    assert s.delays["hot_room"].delays_h == [0.0]
    s = score(truth(item(CONDITION, "hot_room", 30, 34), days=2), [alert(6, "heat")])
    assert s.delays["hot_room"].delays_h == [None]


def test_hot_room_while_away_and_told_is_not_a_missed_danger() -> None:
    """Away/hospital mode pauses welfare rules (DESIGN.md §5): a hot room with nobody home
    by the system's own record is counted apart; untold, it is still a miss."""
    away = truth(item(ABSENCE, "hospital", 0, 20, told=True),
                 item(CONDITION, "hot_room", 10, 16))
    told = score(away, [])
    assert told.delays["hot_room"].delays_h == []
    assert told.summary()["delays"]["hot_room"]["away_told"] == 1
    text = markdown(build("cmd", away, {"dolbom": []}, {}))
    assert "while the resident was away or in hospital and the system was told" in text
    assert "hot_room 1." in text
    untold = score(truth(item(ABSENCE, "hospital", 0, 20, told=False),
                         item(CONDITION, "hot_room", 10, 16)), [])
    assert untold.delays["hot_room"].delays_h == [None]


def test_naive_timer_on_a_tiny_stream() -> None:
    """An H-hour timer raises once per silence of H hours of activity events, on the rx clock."""
    devices = {"p1": ("s", "h1"), "p2": ("s", "h2")}
    m = 60_000

    def msg(t_h: float, dev: str, leaf: str) -> tuple[int, str, Any]:
        return (T0 + int(t_h * H), f"care/v1/s/{dev}/{leaf}", {})

    stream = [msg(0, "p1", "status"), msg(1, "p1", "event/motion"),
              msg(0.5, "p2", "event/motion"),
              msg(5, "p1", "telemetry"),  # a heartbeat is not activity
              msg(14, "p1", "event/motion"),  # 13 h of silence: one alert at 13 h
              msg(20, "p1", "event/door"), msg(40, "p1", "event/bed")]
    alerts = naive_alerts(devices, sorted(stream, key=lambda x: x[0]), 12, T0 + 60 * H)
    raised = [(a["home"], (a["t_ms"] - T0) / H) for a in alerts if a["action"] == "raise"]
    assert raised == [("h2", 12.5), ("h1", 13.0), ("h1", 32.0), ("h1", 52.0)]
    assert all(a["to"] == ["care_worker"] and a["class"] == "welfare" for a in alerts)
    assert naive_alerts(devices, [msg(0, "p1", "event/motion")], 12, T0 + 11 * H + m) == []


def test_report_has_the_command_line_and_every_system() -> None:
    """The Markdown report starts with the command and shows Dolbom beside both timers."""
    t = truth(item(INCIDENT, "death", 2, 40), days=2)
    doc = build("dolbom eval care --homes 1", t,
                {"dolbom": [alert(14, "inactivity")], "naive_12h": [], "naive_24h": []},
                {"messages": 10})
    text = markdown(doc)
    assert "    dolbom eval care --homes 1" in text.splitlines()[:6]
    assert "naive 12 h timer" in text and "naive 24 h timer" in text
    assert doc["systems"]["dolbom"]["immobile"]["within_12h"] == 1.0
