"""The rule-memory benchmark runs a real AlertService on a small fleet."""

from __future__ import annotations

import pytest

from dolbom.bench.rule_memory import measure


def test_rule_memory_measures_what_the_service_holds() -> None:
    """Configuration, state and the save queue are each measured, and the total adds up."""
    m = measure(200)
    assert m.homes == 200 and m.heartbeat_us > 0
    assert m.config_bytes_per_home > 0 and m.state_bytes_per_home > 0
    assert m.dirty_bytes_per_home > 0
    assert m.total_bytes_per_home == pytest.approx(
        m.config_bytes_per_home + m.state_bytes_per_home)
