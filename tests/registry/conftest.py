"""Fixtures of the registry tests: a real broker wired to the registry (the migrated
databases, ``factory`` and ``sqlite_factory``, are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dolbom.stack.mosquitto import Mosquitto


@pytest.fixture()
def broker(make_mosquitto: Callable[[], Mosquitto]) -> Mosquitto:
    """A new real Mosquitto with empty passwd/ACL: each test changes its users and rights."""
    return make_mosquitto()
