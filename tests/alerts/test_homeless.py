"""Devices in no home are watched for silence too (dolbom/alerts/homeless.py): a corridor
detector or a gateway of several flats that goes quiet raises one low technical alert for
its site, cleared when it is heard again; a Last Will is not a sign of life."""

from __future__ import annotations

from datetime import UTC, datetime

from dolbom.alerts.homeless import HomelessWatch
from dolbom.alerts.model import Priority, Rule
from dolbom.alerts.rules.actions import Action, Clear, Raise, Suppressed
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


def test_a_flats_device_lost_with_its_gateway_of_no_home_is_the_gateways_alert_alone() -> None:
    """A gateway of several flats (no home) cut off: each flat's device that went quiet with
    it is not a device_lost of its own (recorded as suppressed), the gateway's alert says
    it once; a device silent while its gateway is heard is lost itself; at medium (the flat
    has no working sensor left) the care worker is still told."""
    w = HomelessWatch()
    w.adopt([GW], set(), T0, {"pir-f1": "gw-f1", "pir-f2": "gw-f1"})
    w.observe(Seen("gw-f1", T0))

    def lost(dev: str, last: int, priority: Priority = Priority.LOW) -> Action:
        return Raise(Rule.DEVICE_LOST, priority, last + 180_000, device=dev,
                     detail={"device": dev, "last_seen_ms": last})

    quiet = w.vet("f1", lost("pir-f1", T0 + 5_000))  # the gateway last heard before it
    assert isinstance(quiet, Suppressed) and "gw-f1" in quiet.reason
    assert isinstance(w.vet("f1", lost("pir-f1", T0 + 5_000, Priority.MEDIUM)), Raise)
    assert isinstance(w.vet("f3", lost("pir-f3", T0 + 5_000)), Raise)  # not its child
    w.observe(Seen("gw-f1", T0 + 30_000))  # the gateway is heard after the device
    assert isinstance(w.vet("f2", lost("pir-f2", T0 + 5_000)), Raise)
    assert _lost(w, T0 + 30_000 + 90_000) == [("gw-f1", Rule.GATEWAY_LOST, True)]


def test_a_flats_device_that_died_during_the_cut_is_lost_once_its_gateway_is_back() -> None:
    """Held back while its gateway was quiet; the gateway heard again, a device still
    silent one lost interval later died during the cut: its home's device_lost after all.
    One heard again (the home's rules clear device_lost) is let go."""
    w = HomelessWatch()
    w.adopt([GW], set(), T0, {"pir-f1": "gw-f1", "pir-f2": "gw-f2x", "pir-f3": "gw-f1"})
    w.observe(Seen("gw-f1", T0))
    for dev, home in (("pir-f1", "f1"), ("pir-f3", "f3")):
        held = w.vet(home, Raise(Rule.DEVICE_LOST, Priority.LOW, T0 + 185_000, device=dev,
                                 detail={"device": dev, "last_seen_ms": T0 + 5_000,
                                         "promised_s": 60}))
        assert isinstance(held, Suppressed)
    assert w.vet("f3", Clear(Rule.DEVICE_LOST, T0 + 200_000, "device heard again")) \
        == Clear(Rule.DEVICE_LOST, T0 + 200_000, "device heard again")  # pir-f3 is back
    w.check(T0 + 3_600_000)  # (the gateway's own alert)
    w.observe(Seen("gw-f1", T0 + 3_600_000))
    back = T0 + 3_600_000
    assert [c for c in w.check(back + 179_999) if c.home] == []
    (c,) = [c for c in w.check(back + 180_000) if c.home]
    assert (c.device, c.home, c.site, c.rule, c.raise_, c.at_ms) == (
        "pir-f1", "f1", "s1", Rule.DEVICE_LOST, True, back + 180_000)
    assert c.detail["after_gateway"] == "gw-f1"
    assert [x for x in w.check(back + 181_000) if x.home]  # until it is written ...
    w.written([c])
    assert [x for x in w.check(back + 182_000) if x.home] == []  # ... then once only
