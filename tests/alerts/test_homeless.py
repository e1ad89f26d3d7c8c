"""Devices in no home are watched for silence too (dolbom/alerts/homeless.py): a corridor
detector or a gateway of several flats that goes quiet raises one low technical alert for
its site, cleared when it is heard again; a Last Will is not a sign of life."""

from __future__ import annotations

from datetime import UTC, datetime

from dolbom.alerts.homeless import HomelessWatch
from dolbom.alerts.model import Rule
from dolbom.alerts.rules.observations import Seen, StatusObs

T0 = 1_800_000_000_000
SMOKE = ("smk-c1", "s1", "smoke", 60, None)
GW = ("gw-f1", "s1", "gateway", 30, None)


def _lost(w: HomelessWatch, now: int) -> list[tuple[str, Rule, bool]]:
    return [(c.device, c.rule, c.raise_) for c in w.check(now)]


def test_silent_three_intervals_is_one_alert_and_heard_again_clears_it() -> None:
    w = HomelessWatch()
    assert w.adopt([SMOKE, GW], set(), T0) == []
    assert _lost(w, T0 + 10 * 3_600_000) == []  # never heard: not installed yet, not lost
    w.observe(Seen("smk-c1", T0))
    w.observe(Seen("gw-f1", T0))
    assert _lost(w, T0 + 89_999) == []
    assert _lost(w, T0 + 90_000) == [("gw-f1", Rule.GATEWAY_LOST, True)]  # 3 × 30 s
    assert _lost(w, T0 + 179_999) == []  # raised once, not again
    (c,) = w.check(T0 + 180_000)
    assert (c.device, c.rule, c.raise_, c.site) == ("smk-c1", Rule.DEVICE_LOST, True, "s1")
    assert c.at_ms == T0 + 180_000 and c.detail["no_home"] is True
    assert c.detail["promised_s"] == 60
    w.observe(Seen("smk-c1", T0 + 200_000))
    assert _lost(w, T0 + 200_001) == [("smk-c1", Rule.DEVICE_LOST, False)]
    assert _lost(w, T0 + 200_002) == []
    assert _lost(w, T0 + 380_000) == [("smk-c1", Rule.DEVICE_LOST, True)]  # silent again


def test_a_last_will_is_not_a_sign_of_life() -> None:
    w = HomelessWatch()
    w.adopt([GW], set(), T0)
    w.observe(StatusObs("gw-f1", "ready", 30, None, T0, None))
    w.observe(StatusObs("gw-f1", "lost", None, None, T0 + 80_000, None))
    assert _lost(w, T0 + 90_000) == [("gw-f1", Rule.GATEWAY_LOST, True)]
    w.observe(StatusObs("gw-f1", "ready", 30, None, T0 + 95_000, None))
    assert _lost(w, T0 + 95_001) == [("gw-f1", Rule.GATEWAY_LOST, False)]


def test_a_restart_counts_from_the_last_seen_time_and_knows_its_open_alerts() -> None:
    seen = datetime.fromtimestamp((T0 - 170_000) / 1000, UTC).replace(tzinfo=None)
    w = HomelessWatch()
    w.adopt([("smk-c1", "s1", "smoke", 60, seen), ("smk-c2", "s1", "smoke", 60, seen)],
            {"smk-c2"}, T0)
    assert _lost(w, T0 + 10_000) == [("smk-c1", Rule.DEVICE_LOST, True)]  # 180 s since seen
    # smk-c2's alert was left open by the last run: heard, it is cleared
    w.observe(Seen("smk-c2", T0 + 11_000))
    assert _lost(w, T0 + 11_001) == [("smk-c2", Rule.DEVICE_LOST, False)]


def test_a_device_given_a_home_leaves_the_watch_and_its_alert_is_cleared() -> None:
    w = HomelessWatch()
    w.adopt([SMOKE, GW], set(), T0)
    for dev in ("smk-c1", "gw-f1"):
        w.observe(Seen(dev, T0))
    assert sorted(d for d, _, up in _lost(w, T0 + 200_000) if up) == ["gw-f1", "smk-c1"]
    changes = w.adopt([GW], set(), T0 + 201_000)  # smk-c1 now in a home's rules
    assert [(c.device, c.raise_) for c in changes] == [("smk-c1", False)]
    assert "smk-c1" not in w and "gw-f1" in w
    assert _lost(w, T0 + 400_000) == []  # the gateway's alert stays open, once
