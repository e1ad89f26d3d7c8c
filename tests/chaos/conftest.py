"""Fixtures for the chaos suite (TESTPLAN B1-B3): the whole real stack per test, as in
tests/integration, plus a TCP fault proxy between a client and a server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from tests.chaos.proxy import FaultProxy
from tests.integration.conftest import stack

__all__ = ["stack"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: a fault, bad-input or security scenario of TESTPLAN B1-B3 "
        "against the real servers")
    config.addinivalue_line("markers", "security: a security scenario of TESTPLAN B3")


ProxyFactory = Callable[[int], AbstractAsyncContextManager[FaultProxy]]


@pytest.fixture()
def fault_proxy() -> ProxyFactory:
    """``async with fault_proxy(port) as p``: a fault proxy in front of a loopback port,
    closed (every connection reset) when the block ends or after 300 s at most."""

    @asynccontextmanager
    async def make(port: int) -> AsyncIterator[FaultProxy]:
        async with FaultProxy(port, lifetime_s=300.0) as p:
            yield p

    return make
