"""Out of bed at night for more than 30 min."""

from __future__ import annotations

import pytest

from dolbom.alerts.engine import Clear, Suppressed
from dolbom.alerts.model import Priority, Rule
from tests.alerts.enginekit import BED, MIN, Home, S, local

T0 = local(2, 20)


@pytest.mark.parametrize(("out", "back", "raise_at"), [
    ((3, 2, 0), None, (3, 2, 30)),
    ((3, 2, 0), (3, 2, 29), None),
    ((3, 2, 0), (3, 2, 30), None),  # "in" at the very ms of the verdict wins
    ((3, 5, 50), None, (3, 6, 20)),  # out inside the night, verdict after it ended
    ((2, 21, 0), None, None),  # out before the night window
    ((3, 6, 0), None, None),
])
def test_out_of_bed_at_night(out: tuple[int, int, int], back: tuple[int, int, int] | None,
                             raise_at: tuple[int, int, int] | None) -> None:
    """"out" in the night window and no "in" within 30 min raises at out + 30 min."""
    home = Home(start=T0)
    home.activity(BED, local(*out), "bed", "out")
    if back:
        home.activity(BED, local(*back), "bed", "in")
    home.run(local(3, 8))
    rs = home.raised(Rule.OUT_OF_BED_AT_NIGHT)
    assert [r.at_ms for r in rs] == ([local(*raise_at)] if raise_at else [])
    assert all(r.priority is Priority.MEDIUM and r.detail["out_since_ms"] == local(*out)
               for r in rs)


def test_back_in_bed_clears() -> None:
    """"in" after the alert clears it; the next night's "out" starts a new episode."""
    home = Home(start=T0)
    home.activity(BED, local(3, 1), "bed", "out")
    home.run(local(3, 1, 45))
    home.activity(BED, local(3, 1, 50), "bed", "in")
    assert home.cleared(Rule.OUT_OF_BED_AT_NIGHT) == [
        Clear(Rule.OUT_OF_BED_AT_NIGHT, local(3, 1, 50), "back in bed")]
    home.activity(BED, local(3, 23), "bed", "out")
    home.run(local(3, 23, 31))
    assert [r.at_ms for r in home.raised(Rule.OUT_OF_BED_AT_NIGHT)] == [
        local(3, 1, 30), local(3, 23, 30)]


def test_replayed_out_starts_nothing() -> None:
    """A hist "out" is history: no out-of-bed episode."""
    home = Home(start=T0)
    home.run(local(3, 3))
    home.activity(BED, local(3, 2), "bed", "out", hist=True)
    home.run(local(3, 4))
    assert home.raised(Rule.OUT_OF_BED_AT_NIGHT) == []


def test_a_lost_bed_sensor_suppresses_the_verdict() -> None:
    """A bed sensor lost after "out" gives DEVICE_LOST and a suppressed out-of-bed verdict."""
    home = Home(start=T0)
    home.activity(BED, local(3, 2) - 30 * S, "bed", "out")
    home.silence(BED)
    home.run(local(3, 4))
    assert home.raised(Rule.OUT_OF_BED_AT_NIGHT) == []
    assert home.suppressed(Rule.OUT_OF_BED_AT_NIGHT) == [
        Suppressed(Rule.OUT_OF_BED_AT_NIGHT, local(3, 2) + 29 * MIN + 30 * S, "bed sensor lost")]
    assert [r.rule for r in home.raised()] == [Rule.DEVICE_LOST]
