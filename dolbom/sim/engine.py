"""The simulator's pure core: ``Simulation.advance(now_ms) -> list[Outgoing]``.

No I/O and no clock of its own: the shell (``runner``) passes real time in ms,
tells it when a device's MQTT link comes and goes and when an ack arrives, and
publishes what it returns. Tests drive it with a made-up clock.

Delivery (DESIGN.md §3): telemetry is QoS 0; activity and device events are
QoS 1; a life-safety event is QoS 1 *and* kept in its device's outbox,
re-sent with the same ``(boot, seq)`` (capped exponential backoff while the
link is up, all at once when it comes back) until its ack arrives.
"""

from __future__ import annotations

import contextlib
import math
import random
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from dolbom.protocol import Topics, encode_status
from dolbom.sim.errors import IncidentError
from dolbom.sim.home import HomeState, climate, extend, power_w, readings, start_routine
from dolbom.sim.incidents import (
    LASTING,
    SUPPRESSES_ACTIVITY,
    ActiveIncident,
    Incident,
    draw_duration_ms,
    draw_random,
    next_random_at,
    parse_incident,
)
from dolbom.sim.model import DeviceState, MsgClass, Outgoing, Pending, SimClock
from dolbom.sim.plan import Power, SimPlan
from dolbom.sim.routine import (
    DAY_S,
    Act,
    Activity,
    profile_for,
    target_temp_c,
)

PLUG_REPORT_DELTA_W = 20.0  # a plug reports at once when its draw changes this much
INCIDENT_DOOR_CLOSE_MS = 5_000  # a door opened by an incident shuts a few seconds later
BATTERY_FLOOR_PCT = 1.0
BATTERY_REPLACED_BELOW_PCT = 5.0  # a care worker swaps a flat battery between runs


@dataclass(frozen=True, slots=True)
class SimConfig:
    fw: str = "1.0.0-sim"
    retry_initial_s: float = 5.0
    retry_cap_s: float = 30.0  # a pending life-safety event is re-sent at least this often
    random_incident_rate: float = 0.0  # expected incidents per home per real hour
    first_report_s: float = 5.0  # a device reports within this long after boot
    battery_drain_pct_per_day: float = 1.0  # per simulated day
    battery_low_pct: float = 20.0  # DESIGN.md §5, "low battery"


@dataclass(frozen=True, slots=True)
class DeviceMemory:
    """What a device keeps across simulator runs (its flash): boot counter, battery level."""

    boot: int
    battery_pct: float | None


def _incident_key(kind: Incident, device: str | None) -> str:
    return f"{kind.value}/{device}" if device else kind.value


class Simulation:
    """Every home of a plan, advanced together by one injected clock."""

    def __init__(
        self,
        plan: SimPlan,
        clock: SimClock,
        *,
        topics: Topics | None = None,
        config: SimConfig | None = None,
        memory: Mapping[str, DeviceMemory] | None = None,
    ) -> None:
        self.plan = plan
        self.clock = clock
        self.topics = topics or Topics()
        self.config = config or SimConfig()
        memory = memory or {}
        now_ms = clock.start_ms
        sim_t = clock.sim(now_ms)
        self.homes: dict[str, HomeState] = {}
        self.devices: dict[str, DeviceState] = {}
        self._home_of: dict[str, HomeState] = {}
        self._lifecycle: list[str] = []
        self.resent = 0  # life-safety re-sends emitted
        self._last_sim = sim_t
        for home in plan.homes:
            profile = profile_for(plan.seed, home.id)
            rng = random.Random(f"{plan.seed}/{home.id}/home")
            hs = HomeState(
                plan=home, profile=profile, actions=deque(), plan_end=sim_t, next_day=0,
                activity=Activity.SLEEP, bed="in", temp_c=0.0, last_sim=sim_t, rng=rng,
                next_random_ms=next_random_at(rng, now_ms, self.config.random_incident_rate),
            )
            start_routine(hs, plan.seed, sim_t)
            hs.temp_c = target_temp_c(profile, sim_t % DAY_S, heat_wave=False)
            self.homes[home.id] = hs
            for dp in home.devices:
                drng = random.Random(f"{plan.seed}/{dp.id}/device")
                mem = memory.get(dp.id)
                battery: float | None = None
                if dp.power is Power.BATTERY:
                    if mem is not None and mem.battery_pct is not None:
                        battery = mem.battery_pct
                        if battery < BATTERY_REPLACED_BELOW_PCT:
                            battery = 100.0
                    else:
                        # Most batteries are fresh; a few are near the low mark so a
                        # demo shows the low-battery alert.
                        battery = (drng.uniform(20.5, 24.0) if drng.random() < 0.1
                                   else drng.uniform(55.0, 100.0))
                ds = DeviceState(
                    plan=dp, site=plan.site, home=home.id,
                    boot=(mem.boot + 1) if mem is not None else 1,  # this run is a new boot
                    battery_pct=battery,
                    rssi_dbm=profile.rssi_dbm + drng.uniform(-8.0, 8.0),
                    next_report_ms=now_ms + int(drng.uniform(0, self.config.first_report_s)
                                                * 1000),
                )
                self.devices[dp.id] = ds
                self._home_of[dp.id] = hs

    # -- queries ---------------------------------------------------------------
    def alive(self, device: str) -> bool:
        return self.devices[device].alive

    def will(self, device: str) -> tuple[str, bytes]:
        """The Last Will: retained ``{"state":"lost"}`` on the status topic (QoS 1)."""
        d = self.devices[device]
        return self.topics.status(d.site, d.id), encode_status("lost")

    def memory(self) -> dict[str, DeviceMemory]:
        return {d.id: DeviceMemory(d.boot, d.battery_pct) for d in self.devices.values()}

    def take_lifecycle(self) -> list[str]:
        """Devices that died or came back since the last call (the shell drops or opens links)."""
        out, self._lifecycle = self._lifecycle, []
        return out

    def pending(self) -> tuple[int, int]:
        """Life-safety events awaiting ack, and the most tries any of them has had."""
        n = tries = 0
        for d in self.devices.values():
            n += len(d.outbox)
            for p in d.outbox.values():
                tries = max(tries, p.tries)
        return n, tries

    def active_incidents(self) -> list[tuple[str, str]]:
        return [(h.plan.id, key) for h in self.homes.values() for key in h.incidents]

    def sim_time(self, now_ms: int) -> float:
        return self.clock.sim(now_ms)

    # -- the link (told by the shell) --------------------------------------------
    def link_up(self, device: str, now_ms: int) -> list[Outgoing]:
        """The device (re)connected: its birth status, then every un-acked life-safety event."""
        d = self.devices[device]
        d.link_up = True
        out = [d.status(self.topics, self.config.fw, "ready")]
        for p in d.outbox.values():
            self._send_pending(d, p, now_ms, out)
        return out

    def link_down(self, device: str) -> None:
        self.devices[device].link_up = False

    def farewell(self, device: str) -> Outgoing:
        """Retained ``disconnected`` status a device sends before a clean DISCONNECT."""
        return self.devices[device].status(self.topics, self.config.fw, "disconnected")

    def ack(self, device: str, boot: int, seq: int) -> bool:
        """An ack arrived: drop that event from the outbox. False if it was not pending."""
        d = self.devices.get(device)
        return d is not None and d.outbox.pop((boot, seq), None) is not None

    # -- time --------------------------------------------------------------------
    def advance(self, now_ms: int) -> list[Outgoing]:
        """Everything the devices send up to ``now_ms`` (real time, ms)."""
        sim_t = self.clock.sim(now_ms)
        out: list[Outgoing] = []
        self._drain(sim_t)
        for home in self.homes.values():
            self._expire(home, now_ms, out)
            self._maybe_random_incident(home, now_ms, out)
            self._routine(home, sim_t, now_ms, out)
            self._scheduled(home, now_ms, out)
            climate(home, sim_t)
            self._plug_change(home, sim_t, now_ms, out)
            home.last_sim = sim_t
        for d in self.devices.values():
            if not d.alive:
                continue
            if now_ms >= d.next_report_ms:
                self._report(d, self._home_of[d.id], sim_t, now_ms, out)
                nxt = d.next_report_ms + d.plan.hb * 1000
                d.next_report_ms = nxt if nxt > now_ms else now_ms + d.plan.hb * 1000
            if d.link_up:
                for p in d.outbox.values():
                    if now_ms >= p.next_ms:
                        self._send_pending(d, p, now_ms, out)
        return out

    def _drain(self, sim_t: float) -> None:
        """Batteries drain with *simulated* time: months of use become visible in a demo."""
        days = (sim_t - self._last_sim) / DAY_S
        self._last_sim = sim_t
        if days <= 0:
            return
        loss = self.config.battery_drain_pct_per_day * days
        for d in self.devices.values():
            if d.battery_pct is not None and d.alive:
                d.battery_pct = max(BATTERY_FLOOR_PCT, d.battery_pct - loss)

    # -- incidents ---------------------------------------------------------------
    def inject(self, home_id: str, incident: str | Incident, now_ms: int, *,
               device: str | None = None, duration_ms: int | None = None) -> list[Outgoing]:
        """Start an incident now (raises IncidentError if it cannot happen as asked).

        Lasting incidents hold until ``recover`` or, with ``duration_ms``, until
        that much real time has passed.
        """
        home = self.homes.get(home_id)
        if home is None:
            raise IncidentError(f"no home {home_id!r} in this simulation")
        try:
            kind = parse_incident(incident) if isinstance(incident, str) else incident
        except ValueError as e:
            raise IncidentError(str(e)) from None
        out: list[Outgoing] = []
        until = None if duration_ms is None else now_ms + duration_ms
        if kind is Incident.RECOVER:
            was_still = home.suppressed()
            for key in list(home.incidents):
                self._end(home, home.incidents.pop(key), now_ms, out)
            if was_still:
                self._after_recovery(home, now_ms, out)
            return out
        if kind is Incident.BUTTON:
            self._life_safety(home, "button", ("button",), now_ms, out)
        elif kind is Incident.SMOKE:
            self._life_safety(home, "smoke", ("smoke",), now_ms, out)
        elif kind is Incident.FALL:
            # A pendant with fall detection reports it; a fall at night happens
            # after getting up, so the bed mat sees the resident leave first.
            self._life_safety(home, "fall", ("button", "multisensor"), now_ms, out)
            self._bed(home, "out", now_ms, out)
        elif kind is Incident.NIGHT_WANDERING:
            self._bed(home, "out", now_ms, out)
            self._event(home, "multisensor", "motion", None, now_ms, out)
            self._door_cycle(home, now_ms, out)
        elif kind is Incident.DEVICE_DEATH:
            d = self._pick_device(home, device)
            if not d.alive:
                raise IncidentError(f"device {d.id} is already dead")
            d.alive = False
            d.link_up = False
            self._lifecycle.append(d.id)
            home.incidents[_incident_key(kind, d.id)] = ActiveIncident(kind, now_ms, until, d.id)
            return out
        if kind in LASTING:
            home.incidents[_incident_key(kind, None)] = ActiveIncident(kind, now_ms, until)
        return out

    def _pick_device(self, home: HomeState, device: str | None) -> DeviceState:
        if device is None:
            # The activity sensor by default: its silence must raise "lost",
            # not a false "all quiet" (DESIGN.md §5, "silence is not safety").
            dp = home.plan.device("multisensor") or home.plan.devices[0]
            return self.devices[dp.id]
        d = self.devices.get(device)
        if d is None or d.home != home.plan.id:
            raise IncidentError(f"device {device!r} is not in home {home.plan.id}")
        return d

    def _end(self, home: HomeState, inc: ActiveIncident, now_ms: int,
             out: list[Outgoing]) -> None:
        if inc.kind is Incident.DEVICE_DEATH and inc.device is not None:
            d = self.devices[inc.device]
            d.alive = True
            d.reboot()  # power comes back: a new boot, announced by a new birth
            d.next_report_ms = now_ms + int(self.config.first_report_s * 1000)
            self._lifecycle.append(d.id)
        elif inc.kind is Incident.NIGHT_WANDERING:
            self._door_cycle(home, now_ms, out)  # coming home

    def _after_recovery(self, home: HomeState, now_ms: int, out: list[Outgoing]) -> None:
        """The resident moves again; bring the bed mat in line with the routine."""
        if home.activity is Activity.OUT:
            return
        self._event(home, "multisensor", "motion", None, now_ms, out)
        self._bed(home, "in" if home.activity is Activity.SLEEP else "out", now_ms, out)

    def _expire(self, home: HomeState, now_ms: int, out: list[Outgoing]) -> None:
        ended = False
        for key, inc in list(home.incidents.items()):
            if inc.until_ms is not None and now_ms >= inc.until_ms:
                del home.incidents[key]
                self._end(home, inc, now_ms, out)
                ended = ended or inc.kind in SUPPRESSES_ACTIVITY
        if ended and not home.suppressed():
            self._after_recovery(home, now_ms, out)

    def _maybe_random_incident(self, home: HomeState, now_ms: int,
                               out: list[Outgoing]) -> None:
        if home.next_random_ms is None or now_ms < home.next_random_ms:
            return
        home.next_random_ms = next_random_at(home.rng, now_ms,
                                             self.config.random_incident_rate)
        if home.incidents:
            return  # one thing at a time per home
        kind = draw_random(home.rng, home.plan.wandering)
        if kind is Incident.NIGHT_WANDERING and home.activity is not Activity.SLEEP:
            return  # wandering is a night exit
        device = None
        if kind is Incident.DEVICE_DEATH:
            device = home.rng.choice(home.plan.devices).id
        # IncidentError: this home lacks the device (or it is dead): nothing happens.
        with contextlib.suppress(IncidentError):
            out.extend(self.inject(home.plan.id, kind, now_ms, device=device,
                                   duration_ms=draw_duration_ms(home.rng, kind)))

    # -- routine -----------------------------------------------------------------
    def _routine(self, home: HomeState, sim_t: float, now_ms: int,
                 out: list[Outgoing]) -> None:
        extend(home, self.plan.seed, sim_t)
        suppressed = home.suppressed()
        motion = False
        while home.actions and home.actions[0].t <= sim_t:
            a = home.actions.popleft()
            if a.act is Act.ACTIVITY and a.val is not None:
                home.activity = Activity(a.val)
            elif suppressed:
                continue  # the resident is not moving: the sensors see nothing
            elif a.act is Act.MOTION:
                # Several detections inside one step are one PIR report.
                if not motion:
                    self._event(home, "multisensor", "motion", None, now_ms, out)
                    motion = True
            elif a.act is Act.BED and a.val is not None:
                self._bed(home, a.val, now_ms, out)
            elif a.act is Act.DOOR and a.val is not None:
                self._event(home, "door", "door", a.val, now_ms, out)

    def _scheduled(self, home: HomeState, now_ms: int, out: list[Outgoing]) -> None:
        if not home.scheduled:
            return
        due = [s for s in home.scheduled if s[0] <= now_ms]
        home.scheduled = [s for s in home.scheduled if s[0] > now_ms]
        for _, etype, val in due:
            self._event(home, "door" if etype == "door" else "multisensor", etype, val,
                        now_ms, out)

    def _door_cycle(self, home: HomeState, now_ms: int, out: list[Outgoing]) -> None:
        self._event(home, "door", "door", "open", now_ms, out)
        home.scheduled.append((now_ms + INCIDENT_DOOR_CLOSE_MS, "door", "closed"))

    def _bed(self, home: HomeState, val: str, now_ms: int, out: list[Outgoing]) -> None:
        if val != home.bed:
            home.bed = val
            self._event(home, "bed", "bed", val, now_ms, out)

    def _plug_change(self, home: HomeState, sim_t: float, now_ms: int,
                     out: list[Outgoing]) -> None:
        if abs(power_w(home) - home.plug_w) < PLUG_REPORT_DELTA_W:
            return
        dp = home.plan.device("plug")
        if dp is None or not self.devices[dp.id].alive:
            return
        d = self.devices[dp.id]
        out.append(d.telemetry(self.topics, readings(d, home, sim_t), now_ms))

    def _report(self, d: DeviceState, home: HomeState, sim_t: float, now_ms: int,
                out: list[Outgoing]) -> None:
        """A mains heartbeat, or a battery node's wake-up (readings, then ``sleeping``)."""
        out.append(d.telemetry(self.topics, readings(d, home, sim_t), now_ms))
        if d.battery_pct is not None:
            if d.battery_pct < self.config.battery_low_pct and not d.battery_low_sent:
                d.battery_low_sent = True
                out.append(d.event(self.topics, "battery_low", None, now_ms))
            out.append(d.status(self.topics, self.config.fw, "sleeping", next_s=d.plan.hb))

    # -- events ------------------------------------------------------------------
    def _event(self, home: HomeState, kind: str, etype: str, val: str | None, now_ms: int,
               out: list[Outgoing]) -> None:
        """An activity event from the home's device of ``kind``, if it has a live one."""
        dp = home.plan.device(kind)
        if dp is None:
            return
        d = self.devices[dp.id]
        if d.alive:
            out.append(d.event(self.topics, etype, val, now_ms))

    def _life_safety(self, home: HomeState, etype: str, kinds: Iterable[str], now_ms: int,
                     out: list[Outgoing]) -> None:
        kinds = tuple(kinds)
        for kind in kinds:
            dp = home.plan.device(kind)
            if dp is not None and self.devices[dp.id].alive:
                d = self.devices[dp.id]
                break
        else:
            raise IncidentError(f"home {home.plan.id} has no working {kinds[0]} device")
        msg = d.event(self.topics, etype, None, now_ms, MsgClass.LIFE_SAFETY)
        p = Pending(msg, tries=0, next_ms=now_ms)
        d.outbox[(d.boot, d.seq)] = p  # the envelope just taken
        if d.link_up:
            self._send_pending(d, p, now_ms, out)
        # else: sent as soon as the link comes up (``link_up``)

    def _send_pending(self, d: DeviceState, p: Pending, now_ms: int,
                      out: list[Outgoing]) -> None:
        p.tries += 1
        if p.tries > 1:
            self.resent += 1
        delay = min(self.config.retry_cap_s,
                    self.config.retry_initial_s * 2 ** min(p.tries - 1, 20))
        p.next_ms = now_ms + math.ceil(delay * 1000)
        out.append(p.msg.at(now_ms))

