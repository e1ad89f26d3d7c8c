"""Helpers of the simulator tests: plans built in memory and a core on a made-up clock."""

from __future__ import annotations

from dolbom.protocol import Message, Topics, decode
from dolbom.sim.engine import SimConfig, Simulation
from dolbom.sim.model import Outgoing, SimClock
from dolbom.sim.plan import (
    DEFAULT_KINDS,
    KIND_POWER,
    KIND_PREFIX,
    MAINS_HB_S,
    DevicePlan,
    HomePlan,
    Power,
    SimPlan,
)

T0 = 1_763_700_000_000  # 2025-11-21 04:40 UTC: any fixed real time will do
TOPICS = Topics()


def make_plan(homes: int = 2, *, seed: int = 7, site: str = "s1",
              kinds: tuple[str, ...] = DEFAULT_KINDS, battery_hb: int = 600,
              wandering: bool = False) -> SimPlan:
    out = []
    for n in range(1, homes + 1):
        h = f"h{n:03d}"
        devices = tuple(
            DevicePlan(f"{KIND_PREFIX[k]}-{h}", k, KIND_POWER[k],
                       MAINS_HB_S if KIND_POWER[k] is Power.MAINS else battery_hb, f"pw-{k}-{h}")
            for k in kinds
        )
        out.append(HomePlan(h, devices, wandering))
    return SimPlan(site, seed, tuple(out))


def make_sim(plan: SimPlan | None = None, *, speed: float = 60.0, tod_h: float = 0.0,
             link: bool = True, **config: float) -> Simulation:
    """A core started at T0 with the simulated day at ``tod_h`` o'clock, links up."""
    sim = Simulation(plan or make_plan(), SimClock(T0, tod_h * 3600, speed),
                     topics=TOPICS, config=SimConfig(**config))  # type: ignore[arg-type]
    if link:
        for dev in sim.devices:
            sim.link_up(dev, T0)
    return sim


def run(sim: Simulation, seconds: float, step_s: float = 1.0, start_ms: int = T0,
        ) -> list[tuple[int, Outgoing]]:
    """Advance real time from ``start_ms`` by ``seconds`` in steps; (now_ms, message) pairs."""
    out: list[tuple[int, Outgoing]] = []
    steps = int(seconds / step_s)
    for i in range(1, steps + 1):
        now = start_ms + int(i * step_s * 1000)
        out.extend((now, o) for o in sim.advance(now))
    return out


def decoded(o: Outgoing) -> Message:
    topic = TOPICS.parse(o.topic)
    assert topic is not None, o.topic
    return decode(topic, o.payload)
