"""WriteGate: one writer at a time, urgent (life-safety) writes first, cancellation safe."""

from __future__ import annotations

import asyncio
import threading

import pytest

from dolbom.alerts.gate import WriteGate


async def test_urgent_write_overtakes_waiting_writes() -> None:
    gate = WriteGate()
    release = threading.Event()
    order: list[str] = []

    def blocking(name: str) -> str:
        if name == "first":
            release.wait(5)
        order.append(name)
        return name

    first = asyncio.create_task(gate.run(lambda: blocking("first")))
    await asyncio.sleep(0.05)  # it holds the gate
    normal = [asyncio.create_task(gate.run(lambda n=n: blocking(n))) for n in ("n1", "n2")]
    await asyncio.sleep(0.01)
    urgent = asyncio.create_task(gate.run(lambda: blocking("alarm"), urgent=True))
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(first, *normal, urgent) == ["first", "n1", "n2", "alarm"]
    assert order == ["first", "alarm", "n1", "n2"]
    assert gate.waited_urgent == 1


async def test_writes_never_overlap() -> None:
    gate = WriteGate()
    inside = 0
    most = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        threading.Event().wait(0.002)
        with lock:
            inside -= 1

    await asyncio.gather(*(gate.run(work, urgent=i % 3 == 0) for i in range(30)))
    assert most == 1


async def test_a_cancelled_waiter_does_not_jam_the_gate() -> None:
    gate = WriteGate()
    release = threading.Event()
    holder = asyncio.create_task(gate.run(lambda: release.wait(5)))
    await asyncio.sleep(0.05)
    waiter = asyncio.create_task(gate.run(lambda: "never"))
    await asyncio.sleep(0.01)
    waiter.cancel()
    release.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert await asyncio.wait_for(gate.run(lambda: "next"), 2) == "next"


async def test_a_failing_write_releases_the_gate() -> None:
    gate = WriteGate()

    def boom() -> None:
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError):
        await gate.run(boom)
    assert await asyncio.wait_for(gate.run(lambda: 1), 2) == 1
