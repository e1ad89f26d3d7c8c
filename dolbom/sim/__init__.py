"""The care-home simulator: residents' routines, incidents and device faults over real MQTT.

Pure core (no I/O, injected clock): ``plan`` (what is provisioned), ``routine``
(a resident's day), ``incidents`` (what can go wrong, and which alert rule of
DESIGN.md §5 each exercises), ``model`` (clocks, envelopes, outboxes) and
``engine`` (``Simulation.advance(now_ms) -> list[Outgoing]``). Shells:
``runner`` (one MQTT connection per device, ``run_simulator``), ``control``
(a unix socket for incidents on command), ``provision`` (the registry) and
``cli`` (``dolbom sim provision|run|inject|stats``).

Time: device timestamps are real (``tq`` 2) and heartbeats, re-sends and
incident durations run on real time, because that is what the receiver and
the alert engine measure; only the residents' routine runs on the sped-up
clock (60×: a day in 24 minutes). See ``model``.

Privacy: residents' names, phones and addresses go into the registry only;
the plan, topics, payloads and logs carry opaque ids (DESIGN.md §6).
"""

from dolbom.sim.incidents import Incident
from dolbom.sim.plan import DevicePlan, HomePlan, SimPlan, load_plan, save_plan
from dolbom.sim.runner import run_simulator
from dolbom.sim.settings import SimOptions, SimSettings
from dolbom.sim.stats import SimStats, SimStatsSnapshot

__all__ = [
    "DevicePlan",
    "HomePlan",
    "Incident",
    "SimOptions",
    "SimPlan",
    "SimSettings",
    "SimStats",
    "SimStatsSnapshot",
    "load_plan",
    "run_simulator",
    "save_plan",
]
