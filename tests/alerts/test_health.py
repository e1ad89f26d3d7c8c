"""DependencyWatch: a dependency down long enough raises once; its return clears once."""

from __future__ import annotations

from dolbom.alerts.health import DependencyWatch


def test_short_outage_raises_nothing_and_clears_nothing() -> None:
    w = DependencyWatch(60)
    assert not w.failed("broker", 0)
    assert not w.failed("broker", 59.9)
    assert not w.ok("broker")  # never reported: nothing to clear
    assert not w.failed("broker", 100)  # a new outage starts its own clock
    assert w.down() == {"broker": 100}


def test_long_outage_raises_exactly_once_then_clears_once() -> None:
    w = DependencyWatch(60)
    results = [w.failed("influxdb", t) for t in (0, 30, 60, 90, 120)]
    assert results == [False, False, True, False, False]
    assert w.ok("influxdb")
    assert not w.ok("influxdb")
    assert w.down() == {}


def test_dependencies_are_independent() -> None:
    w = DependencyWatch(10)
    w.failed("broker", 0)
    assert w.failed("influxdb", 5) is False
    assert w.failed("broker", 10) is True
    assert w.failed("influxdb", 14) is False
    assert w.failed("influxdb", 15) is True


def test_unreport_raises_again_at_the_next_failure() -> None:
    w = DependencyWatch(10)
    assert w.failed("broker", 10) is False
    assert w.failed("broker", 20) is True
    w.unreport("broker")  # storing the alert failed
    assert w.failed("broker", 21) is True
