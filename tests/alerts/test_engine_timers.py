"""Shortcuts of the engine find what its general path finds: the deadline a state
carries (``timed_ms``) is what the silence rules say, also when the engine skips working
it out again (a temperature reading kept in the baselines while no room is hot or cold);
a reading no rule reads takes the heartbeat path."""

from __future__ import annotations

import random
from typing import Any

import pytest

from dolbom.alerts import engine
from dolbom.alerts.engine import ActivityObs, HomeState, ReadingObs, Seen
from dolbom.alerts.rules.heartbeat import heartbeat
from tests.alerts.enginekit import BED, BUTTON, DOOR, MIN, PIR, PLUG, SMOKE, Home, local


def _timed_afresh(home: Home) -> int:
    w = home.state.view()
    return min((t for rule in engine.TIMED if (t := rule.due(home.cfg, w)) is not None),
               default=0)


def test_the_carried_deadline_is_the_rules_own_through_readings_and_heat() -> None:
    rnd = random.Random(7)
    home = Home(start=local(2, 8))
    at = home.now
    for _ in range(3000):
        at += rnd.randrange(5_000, 4 * MIN)
        pick = rnd.random()
        if pick < 0.55:  # a room's temperature: now and then hot or cold for a while
            dev = rnd.choice((PIR, SMOKE))
            celsius = rnd.choice((22.0, 23.5, 31.8, 33.0, 36.0, 9.0, 10.4, 24.0))
            home.observe(ReadingObs(dev.device, {"temperature_c": celsius}, at, False))
        elif pick < 0.7:
            home.observe(ReadingObs(PLUG.device, {"power_w": rnd.choice((0.0, 3.0, 80.0))},
                                    at, False))
        elif pick < 0.8:
            home.observe(ActivityObs(PIR.device, "motion", None, at, False))
        elif pick < 0.85:
            home.observe(ActivityObs(DOOR.device, "door", rnd.choice(("open", "closed")),
                                     at, False))
        elif pick < 0.9:
            home.observe(ActivityObs(BED.device, "bed", rnd.choice(("in", "out")), at, False))
        else:
            home.observe(Seen(rnd.choice((PIR, DOOR, SMOKE, BED, PLUG)).device, at))
        if (dl := home.deadline()) is not None and dl <= at:
            home.tick(at)
        assert home.state.view().timed_ms == _timed_afresh(home)
    assert any(a.rule.value in ("heat", "cold") for _, a in home.log
               if isinstance(a, engine.Raise))


def test_a_reading_no_rule_reads_is_a_heartbeat(monkeypatch: pytest.MonkeyPatch) -> None:
    """A live reading without power, temperature or battery takes the heartbeat path, and
    that path finds what the general one finds: through silences, lost devices and a
    pending verdict."""
    rnd = random.Random(11)
    home = Home(start=local(2, 8))
    home.silence(BUTTON)
    at = home.now
    taken = 0

    def counted(*a: Any) -> HomeState | None:
        nonlocal taken
        st = heartbeat(*a)
        taken += st is not None
        return st

    for step in range(1500):
        at += rnd.randrange(30_000, 50 * MIN if step % 100 < 20 else 3 * MIN)
        dev = rnd.choice((PIR, DOOR, SMOKE, BED, PLUG))
        obs = ReadingObs(dev.device, {"heart_rate_bpm": 70.0, "rssi_dbm": -60.0}, at,
                         rnd.random() < 0.1)
        monkeypatch.setattr(engine, "heartbeat", counted)
        fast = engine.observe(home.cfg, home.state, obs)
        monkeypatch.setattr(engine, "heartbeat", lambda *a: None)
        slow = engine.observe(home.cfg, home.state, obs)
        assert fast == slow
        if rnd.random() < 0.3:
            home.observe(obs)
        elif rnd.random() < 0.1:
            home.observe(ActivityObs(PIR.device, "motion", None, at, False))
        while (dl := home.deadline()) is not None and dl <= at:
            home.tick(dl)
    assert any(isinstance(a, engine.Raise) for _, a in home.log) and taken > 100
