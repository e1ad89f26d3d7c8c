"""The active/standby lease through a real PostgreSQL (dolbom.alerts.leader): one holder
at a time, the standby takes over when the active's connection ends, and an active
whose connection is cut learns it and stops (fencing)."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

from dolbom.alerts.leader import Lease, LeaseLost
from dolbom.stack.postgres import Postgres

CHECK_S = 0.05


async def _acquired_within(lease: Lease, seconds: float) -> bool:
    stopping = asyncio.Event()
    task = asyncio.create_task(lease.acquire(stopping))
    try:
        return await asyncio.wait_for(asyncio.shield(task), seconds)
    except TimeoutError:
        stopping.set()
        assert await task is False  # it gave up because it was told to stop
        return False


def _terminate_holders(srv: Postgres, pw: str, key: int) -> int:
    """Kill the server session holding ``key`` (as a crash of its machine would end it)."""
    with psycopg.connect(host="127.0.0.1", port=srv.port, user="dolbom_admin", password=pw,
                         dbname="postgres", autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND ((classid::bigint << 32) | objid::bigint) = %s", (key,)).fetchall()
    return len(rows)


async def test_one_active_the_standby_takes_over_when_the_active_goes(
        pg_url: str, postgres: tuple[Postgres, str]) -> None:
    changes: list[bool] = []
    a = Lease(pg_url, "rules:test", check_s=CHECK_S)
    b = Lease(pg_url, "rules:test", check_s=CHECK_S, on_change=changes.append)
    other = Lease(pg_url, "alarm:test", check_s=CHECK_S)
    try:
        assert await _acquired_within(a, 5)
        assert not await _acquired_within(b, 0.5), "two actives for one lease"
        assert await _acquired_within(other, 5), "another role's lease is independent"
        assert changes == [] and not b.active

        a.release()  # the active stops (or dies: its connection closes)
        assert await _acquired_within(b, 5)
        assert b.active and changes == [True]
    finally:
        for lease in (a, b, other):
            lease.release()


async def test_an_active_whose_connection_is_cut_stops(
        pg_url: str, postgres: tuple[Postgres, str]) -> None:
    srv, pw = postgres
    a = Lease(pg_url, "alarm:fenced", check_s=CHECK_S)
    b = Lease(pg_url, "alarm:fenced", check_s=CHECK_S)
    stopping = asyncio.Event()
    try:
        assert await _acquired_within(a, 5)
        holding = asyncio.create_task(a.hold(stopping))
        await asyncio.sleep(3 * CHECK_S)
        assert not holding.done(), "a healthy lease was given up"
        assert _terminate_holders(srv, pw, a.key) == 1
        with pytest.raises(LeaseLost, match="alarm:fenced"):
            await asyncio.wait_for(holding, 10)
        assert not a.active
        assert await _acquired_within(b, 5)
    finally:
        stopping.set()
        a.release()
        b.release()


async def test_on_sqlite_there_is_nothing_to_elect(sqlite_url: str) -> None:
    a, b = Lease(sqlite_url, "rules:x"), Lease(sqlite_url, "rules:x")
    assert await _acquired_within(a, 1) and await _acquired_within(b, 1)
    assert a.active and b.active
