"""Life-safety events raise at once, always: hist, away, hospital (DESIGN.md §5)."""

from __future__ import annotations

import pytest

from dolbom.alerts.engine import LifeSafetyObs, Raise
from dolbom.alerts.model import Priority, Rule
from tests.alerts.enginekit import BUTTON, MIN, PIR, SMOKE, Home, local

T0 = local(2, 3)


@pytest.mark.parametrize("type_", ["button", "fall", "smoke", "gas", "sos_voice"])
@pytest.mark.parametrize("hist", [False, True])
@pytest.mark.parametrize("mode", ["normal", "away", "hospital"])
def test_life_safety_always_raises_high_at_once(type_: str, hist: bool, mode: str) -> None:
    """Every life-safety event raises HIGH with its dedup key, replayed or not, in any mode."""
    home = Home(start=T0, mode=mode)
    acts = home.life_safety(SMOKE, type_, T0 + MIN, seq=7, hist=hist)
    assert acts == [Raise(Rule(type_), Priority.HIGH, T0 + MIN, device="smoke-1",
                          detail={"device": "smoke-1", "hist": hist},
                          event_key=("smoke-1", 3, 7), event_ts_ms=T0 + MIN - 20)]


def test_repeats_raise_again_with_the_same_key() -> None:
    """A re-sent event raises again with the same (device, boot, seq): the journal dedups."""
    home = Home(start=T0)
    home.life_safety(BUTTON, "button", T0 + MIN, seq=5)
    home.life_safety(BUTTON, "button", T0 + 2 * MIN, seq=5)
    assert [r.event_key for r in home.raised()] == [("btn-1", 3, 5)] * 2


def test_from_a_device_outside_the_home_still_raises() -> None:
    """A life-safety event is never dropped, even if the registry lags behind."""
    home = Home(start=T0)
    acts = home.observe(LifeSafetyObs("new-btn", "fall", 1, 1, T0, T0 + MIN, False))
    assert [(a.rule, a.device) for a in acts if isinstance(a, Raise)] == [(Rule.FALL, "new-btn")]


def test_life_safety_events_never_clear() -> None:
    """Only a person resolves a life-safety alert: no Clear ever follows."""
    home = Home(start=T0)
    home.life_safety(PIR, "fall", T0 + MIN)
    home.activity(PIR, T0 + 2 * MIN)
    home.run(T0 + 60 * MIN)
    assert home.cleared() == []


def test_an_unknown_life_safety_type_is_refused_when_built() -> None:
    """The observation cannot even be built with a non-life-safety type."""
    with pytest.raises(ValueError, match="not a life-safety"):
        LifeSafetyObs("d", "motion", 1, 1, T0, T0, False)
