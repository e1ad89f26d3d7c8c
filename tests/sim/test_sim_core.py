"""The simulator's pure core on a made-up clock: routine, envelopes, delivery, incidents."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict

import pytest

from dolbom.protocol import Ack, Event, Status, Telemetry, encode_ack
from dolbom.sim.engine import DeviceMemory, Simulation
from dolbom.sim.errors import IncidentError
from dolbom.sim.model import MsgClass, Outgoing, SimClock
from dolbom.sim.plan import KIND_PREFIX
from dolbom.sim.routine import DAY_S, day_plan, profile_for
from tests.sim.sim_helpers import T0, TOPICS, decoded, make_plan, make_sim, run

ACTIVITY = {"motion", "door", "bed"}


def _events(msgs: list[tuple[int, Outgoing]], name: str, device: str | None = None
            ) -> list[tuple[int, Outgoing]]:
    return [(t, o) for t, o in msgs
            if o.name == name and (device is None or o.device == device)]


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_day_has_motion_by_day_and_little_at_night(seed: int) -> None:
    """Over simulated days, PIR motion is frequent from 08 to 20 h and rare from 00 to 05 h."""
    sim = make_sim(make_plan(4, seed=seed), speed=60.0, tod_h=0.0)
    per_hour: Counter[int] = Counter()
    for now, o in run(sim, 3 * DAY_S / 60, step_s=1.0):  # three simulated days
        if o.name == "motion":
            per_hour[int(sim.sim_time(now) % DAY_S // 3600)] += 1
    day = sum(per_hour[h] for h in range(8, 20)) / 12
    night = sum(per_hour[h] for h in range(0, 5)) / 5
    assert day > 20 * 3 * 4 / 12  # dozens of detections an hour across the homes
    assert night < day * 0.1


def test_routine_is_deterministic_and_step_independent() -> None:
    """The same seed replays the same doors and beds whatever the clock's step size."""
    def doors_beds(step_s: float) -> list[tuple[str, str, str | None]]:
        sim = make_sim(make_plan(3), speed=120.0, tod_h=5.0)
        return [(o.device, o.name, o.val) for _, o in run(sim, 1200, step_s=step_s)
                if o.name in ("door", "bed")]

    fine, coarse = doors_beds(1.0), doors_beds(7.0)
    assert fine
    for dev in {d for d, _, _ in fine}:  # one step may interleave homes differently
        assert [x for x in fine if x[0] == dev] == [x for x in coarse if x[0] == dev]


def test_a_routine_day_sleeps_at_night() -> None:
    """Each routine day gets the resident out of bed once in the morning and in at night."""
    profile = profile_for(7, "h001")
    for day in range(5):
        start, end, actions = day_plan(profile, 7, "h001", day)
        assert 4.5 * 3600 < start - day * DAY_S < 8.5 * 3600
        beds = [a.val for a in actions if a.act.value == "bed"]
        assert beds[0] == "out" and beds[-1] == "in"
        assert all(start <= a.t < end + 60 for a in actions)


@pytest.mark.parametrize("kind", ["multisensor", "bed", "plug"])
def test_mains_heartbeat_every_60_s(kind: str) -> None:
    """Mains devices send telemetry every hb = 60 s of real time, whatever the speed-up."""
    sim = make_sim(make_plan(1), speed=60.0, tod_h=3.0)  # at night: few plug changes
    dev = f"{KIND_PREFIX[kind]}-h001"
    times = [t for t, o in run(sim, 15 * 60) if o.device == dev and o.name == "telemetry"]
    gaps = Counter(b - a for a, b in itertools.pairwise(times))
    assert times[0] - T0 <= 5_000  # it reports right after boot
    assert gaps.most_common(1)[0][0] == 60_000
    if kind != "plug":  # the plug also reports when its draw changes
        assert set(gaps) == {60_000}


def test_battery_nodes_wake_report_and_sleep() -> None:
    """Battery nodes wake every hb with battery_pct, then announce sleeping with next = hb."""
    sim = make_sim(make_plan(1, battery_hb=300), speed=1.0, tod_h=3.0)
    msgs = [(t, o) for t, o in run(sim, 3600, step_s=5.0) if o.device == "door-h001"]
    tele = [t for t, o in msgs if o.name == "telemetry"]
    assert [b - a for a, b in itertools.pairwise(tele)] == [300_000] * (len(tele) - 1)
    statuses = [decoded(o) for _, o in msgs if o.name == "status"]
    assert statuses and all(isinstance(s, Status) and s.state == "sleeping" and s.next == 300
                            for s in statuses)
    for _, o in msgs:
        m = decoded(o)
        if isinstance(m, Telemetry):
            assert "battery_pct" in m.samples[0].readings


def test_battery_drains_with_simulated_time() -> None:
    """Battery readings fall steadily: 30 simulated days take about 30 × the daily drain."""
    sim = make_sim(make_plan(1, battery_hb=300), speed=1440.0, battery_drain_pct_per_day=1.0)
    readings = []
    for t, o in run(sim, 30 * 60, step_s=5.0):  # 30 min real = 30 simulated days
        if o.device == "smoke-h001" and o.name == "telemetry":
            m = decoded(o)
            assert isinstance(m, Telemetry)
            readings.append((t, m.samples[0].readings["battery_pct"]))
    assert all(b[1] < a[1] for a, b in itertools.pairwise(readings))
    days = (readings[-1][0] - readings[0][0]) / 60_000  # one simulated day per real minute
    assert readings[0][1] - readings[-1][1] == pytest.approx(days * 1.0, abs=0.2)


def test_low_battery_event_once_below_20() -> None:
    """A battery crossing 20 % sends one battery_low event."""
    plan = make_plan(1, battery_hb=300)
    memory = {"btn-h001": DeviceMemory(3, 20.5), "door-h001": DeviceMemory(3, 90.0),
              "smoke-h001": DeviceMemory(3, 90.0)}
    sim = Simulation(plan, SimClock(T0, 0.0, 1440.0), topics=TOPICS, memory=memory)
    for dev in sim.devices:
        sim.link_up(dev, T0)
    lows = [o for _, o in run(sim, 900, step_s=5.0) if o.name == "battery_low"]
    assert [o.device for o in lows] == ["btn-h001"]
    assert isinstance(decoded(lows[0]), Event)


def test_boot_comes_from_memory_and_flat_batteries_are_replaced() -> None:
    """Each run is a new boot after the remembered one; a battery under 5 % was replaced."""
    memory = {"btn-h001": DeviceMemory(41, 2.0), "pir-h001": DeviceMemory(9, None)}
    sim = Simulation(make_plan(1), SimClock(T0, 0.0, 60.0), topics=TOPICS, memory=memory)
    assert sim.devices["btn-h001"].boot == 42
    assert sim.devices["btn-h001"].battery_pct == 100.0
    assert sim.devices["pir-h001"].boot == 10
    assert sim.devices["door-h001"].boot == 1
    assert sim.memory()["btn-h001"] == DeviceMemory(42, 100.0)


def test_every_message_decodes_and_seq_increases_per_boot() -> None:
    """Every payload decodes under wire contract v1; seq strictly increases within each boot."""
    sim = make_sim(make_plan(2, wandering=True), speed=300.0, tod_h=21.0)
    msgs: list[tuple[int, Outgoing]] = []
    msgs += run(sim, 600)
    for kind in ("button", "fall", "smoke", "heat_wave", "night_wandering", "silence"):
        msgs += [(T0 + 600_000, o) for o in sim.inject("h001", kind, T0 + 600_000)]
    msgs += [(T0 + 600_000, o) for o in sim.inject("h002", "device_death", T0 + 600_000)]
    msgs += run(sim, 300, start_ms=T0 + 600_000)
    for home in ("h001", "h002"):
        msgs += [(T0 + 900_000, o) for o in sim.inject(home, "recover", T0 + 900_000)]
    msgs += [(T0 + 900_000, o) for o in sim.link_up("pir-h002", T0 + 900_000)]
    msgs += run(sim, 600, start_ms=T0 + 900_000)

    last: dict[tuple[str, int], int] = {}  # (device, boot) -> highest seq
    sent_keys: set[tuple[str, int, int]] = set()
    names: Counter[str] = Counter()
    for _, o in msgs:
        m = decoded(o)
        names[o.name] += 1
        if isinstance(m, Status):
            assert m.state in ("ready", "sleeping") and m.boot is not None and m.fw and m.kind
            assert o.qos == 1 and o.retain
            continue
        assert isinstance(m, Event | Telemetry)
        assert m.env.tq == 2 and m.env.ts >= T0
        assert o.qos == (0 if isinstance(m, Telemetry) else 1)
        key = (o.device, m.env.boot, m.env.seq)
        if key in sent_keys:
            assert o.cls is MsgClass.LIFE_SAFETY  # only a re-send repeats its (boot, seq)
            continue
        assert m.env.seq > last.get((o.device, m.env.boot), 0)
        last[(o.device, m.env.boot)] = m.env.seq
        sent_keys.add(key)
    assert {"motion", "telemetry", "status", "button", "fall", "smoke", "door", "bed"} <= set(names)
    assert ("pir-h002", 2) in last  # it came back with a new boot


def test_life_safety_resent_same_boot_seq_until_acked() -> None:
    """A button press is re-sent with the same (boot, seq), backing off to 30 s, until acked."""
    sim = make_sim(make_plan(1), speed=60.0, retry_initial_s=5.0, retry_cap_s=30.0)
    first = sim.inject("h001", "button", T0)
    assert [o.name for o in first] == ["button"] and first[0].qos == 1
    key = first[0].key
    sends = [T0] + [t for t, o in run(sim, 300) if o.name == "button"]
    gaps = [(b - a) // 1000 for a, b in itertools.pairwise(sends)]
    assert gaps[:4] == [5, 10, 20, 30] and set(gaps[4:]) == {30}
    assert sim.pending() == (1, len(sends))

    assert key is not None
    assert not sim.ack("btn-h001", key[0], key[1] + 1)  # not the pending one
    assert sim.ack("btn-h001", *key)
    assert sim.pending() == (0, 0)
    assert not [o for _, o in run(sim, 300, start_ms=T0 + 300_000) if o.name == "button"]


def test_life_safety_resends_are_marked_hist_when_old() -> None:
    """Re-sends older than the 5 s clock tolerance carry hist: true with the original ts."""
    sim = make_sim(make_plan(1), speed=60.0, retry_initial_s=5.0)
    ts0 = sim.inject("h001", "button", T0)[0].env.ts  # type: ignore[union-attr]
    resends = [decoded(o) for _, o in run(sim, 40) if o.name == "button"]
    assert [m.env.hist for m in resends] == [False, True, True]  # type: ignore[union-attr]
    assert {m.env.ts for m in resends} == {ts0}  # type: ignore[union-attr]


def test_life_safety_waits_for_the_link_and_goes_after_birth() -> None:
    """A press while offline is kept; on (re)connect the birth goes first, then the press."""
    sim = make_sim(make_plan(1), link=False)
    assert sim.inject("h001", "button", T0) == []
    assert not [o for _, o in run(sim, 60) if o.name == "button"]
    out = sim.link_up("btn-h001", T0 + 60_000)
    assert [o.name for o in out] == ["status", "button"]
    st = decoded(out[0])
    assert isinstance(st, Status) and st.state == "ready" and st.hb == 600 and st.kind == "button"
    sim.link_down("btn-h001")
    sim.link_up("btn-h001", T0 + 70_000)  # reconnects re-send every pending event
    assert sim.pending() == (1, 2)


def test_ack_payload_round_trip() -> None:
    """The ack the ingest side publishes decodes to what Simulation.ack expects."""
    sim = make_sim(make_plan(1))
    o = sim.inject("h001", "smoke", T0)[0]
    assert o.key is not None and o.device == "smoke-h001"
    ack = TOPICS.parse(TOPICS.ack("s1", "smoke-h001"))
    assert ack is not None
    from dolbom.protocol import decode

    msg = decode(ack, encode_ack(*o.key))
    assert isinstance(msg, Ack) and sim.ack(o.device, msg.boot, msg.seq)


def test_silence_stops_activity_but_not_heartbeats() -> None:
    """During silence no motion/door/bed events are sent, heartbeats go on; recover resumes."""
    sim = make_sim(make_plan(2), speed=60.0, tod_h=8.0)
    sim.inject("h001", "silence", T0)
    msgs = run(sim, 8 * 3600 / 60)  # 08:00-16:00 simulated
    h1 = [o for _, o in msgs if o.device.endswith("h001")]
    assert not [o for o in h1 if o.name in ACTIVITY]
    assert len([o for o in h1 if o.device == "pir-h001" and o.name == "telemetry"]) >= 7
    assert [o for _, o in msgs if o.device.endswith("h002") and o.name == "motion"]
    t = T0 + 480_000
    back = sim.inject("h001", "recover", t)
    assert "motion" in [o.name for o in back]
    later = run(sim, 3600 / 60 * 4, start_ms=t)
    assert [o for _, o in later if o.device == "pir-h001" and o.name == "motion"]


def test_fall_sends_event_then_no_motion() -> None:
    """A fall is a life-safety event from the pendant, and the resident stops moving."""
    sim = make_sim(make_plan(1), speed=60.0, tod_h=9.0)
    out = sim.inject("h001", "fall", T0)
    assert out[0].name == "fall" and out[0].device == "btn-h001"
    assert out[0].cls is MsgClass.LIFE_SAFETY
    after = run(sim, 3 * 3600 / 60)
    assert not [o for _, o in after if o.name in ACTIVITY]


@pytest.mark.parametrize("speed", [1.0, 60.0])
def test_heat_wave_holds_temperature_at_or_above_32_for_over_30_min(speed: float) -> None:
    """A heat wave drives indoor temperature to ≥ 32 °C and keeps it there > 30 real minutes."""
    sim = make_sim(make_plan(1), speed=speed, tod_h=10.0)
    sim.inject("h001", "heat_wave", T0)
    temps = []
    for t, o in run(sim, 2 * 3600, step_s=5.0):
        if o.device == "pir-h001" and o.name == "telemetry":
            m = decoded(o)
            assert isinstance(m, Telemetry)
            temps.append((t, m.samples[0].readings["temperature_c"]))
    hot = [t for t, c in temps if c >= 32.0]
    assert hot, "never reached 32 °C"
    assert all(c >= 32.0 for t, c in temps if t >= hot[0])  # and it stays there
    assert hot[-1] - hot[0] > 30 * 60_000
    t = T0 + 2 * 3600_000
    sim.inject("h001", "recover", t)
    cooled = [decoded(o) for _, o in run(sim, 2 * 3600, step_s=5.0, start_ms=t)
              if o.device == "pir-h001" and o.name == "telemetry"]
    assert cooled[-1].samples[0].readings["temperature_c"] < 30.0  # type: ignore[union-attr]


def test_night_wandering_opens_the_door_and_stays_out() -> None:
    """Night wandering: bed out, motion, door open then closed; nothing more until recover."""
    sim = make_sim(make_plan(1), speed=60.0, tod_h=2.0)
    run(sim, 5)
    t = T0 + 5_000
    out = sim.inject("h001", "night_wandering", t)
    assert [(o.name, o.val) for o in out] == [("bed", "out"), ("motion", None), ("door", "open")]
    later = run(sim, 1800, start_ms=t)
    assert [(o.name, o.val) for _, o in later if o.name in ACTIVITY] == [("door", "closed")]
    back = sim.inject("h001", "recover", t + 1_800_000)
    assert ("door", "open") in [(o.name, o.val) for o in back]


def test_device_death_stops_the_device_and_recover_reboots_it() -> None:
    """device_death silences one device (the shell drops its link); recover brings a new boot."""
    sim = make_sim(make_plan(1), speed=60.0, tod_h=9.0)
    sim.inject("h001", "device_death", T0, device="door-h001")
    assert sim.take_lifecycle() == ["door-h001"] and not sim.alive("door-h001")
    assert not [o for _, o in run(sim, 3600) if o.device == "door-h001"]
    with pytest.raises(IncidentError):
        sim.inject("h001", "device_death", T0, device="door-h001")
    sim.inject("h001", "recover", T0 + 3_600_000)
    assert sim.take_lifecycle() == ["door-h001"] and sim.alive("door-h001")
    birth = decoded(sim.link_up("door-h001", T0 + 3_600_000)[0])
    assert isinstance(birth, Status) and birth.boot == 2
    topic, payload = sim.will("door-h001")
    assert topic == "care/v1/s1/door-h001/status" and payload == b'{"state":"lost"}'


def test_default_device_death_is_the_activity_sensor() -> None:
    """Without a device named, device_death takes the home's PIR multisensor."""
    sim = make_sim(make_plan(1))
    sim.inject("h001", "device_death", T0)
    assert not sim.alive("pir-h001")


def test_random_durations_end_by_themselves() -> None:
    """A lasting incident with a duration recovers on its own when the time is up."""
    sim = make_sim(make_plan(1), speed=60.0, tod_h=9.0)
    sim.inject("h001", "silence", T0, duration_ms=600_000)
    assert sim.active_incidents() == [("h001", "silence")]
    msgs = run(sim, 1200)
    assert sim.active_incidents() == []
    assert min(t for t, o in msgs if o.name == "motion") >= T0 + 600_000


@pytest.mark.parametrize(("home", "kind", "device"), [
    ("h009", "button", None),
    ("h001", "meteor", None),
    ("h001", "device_death", "pir-h002"),
])
def test_impossible_incidents_are_refused(home: str, kind: str, device: str | None) -> None:
    """Unknown homes, incidents and devices of another home raise IncidentError."""
    sim = make_sim(make_plan(2))
    with pytest.raises(IncidentError):
        sim.inject(home, kind, T0, device=device)


def test_button_without_pendant_is_refused() -> None:
    """A home without a pendant cannot press one."""
    sim = make_sim(make_plan(1, kinds=("multisensor", "door")))
    with pytest.raises(IncidentError, match="no working button"):
        sim.inject("h001", "button", T0)


def test_random_incidents_follow_the_seed() -> None:
    """Random incidents happen at about the configured rate and replay with the same seed."""
    def incidents() -> list[tuple[int, str]]:
        sim = make_sim(make_plan(5, wandering=True), speed=60.0,
                       random_incident_rate=4.0)
        seen: list[tuple[int, str]] = []
        active: set[tuple[str, str]] = set()
        for i in range(1, 3 * 3600 // 10):
            now = T0 + i * 10_000
            sim.advance(now)
            cur = set(sim.active_incidents())
            seen += [(now, k) for _, k in sorted(cur - active)]
            active = cur
        return seen

    a, b = incidents(), incidents()
    assert a == b
    assert len(a) >= 5  # lasting ones alone, over 5 homes × 3 h at 4/h


def test_sim_clock_maps_real_to_simulated_time() -> None:
    """At 60× one real minute is one simulated hour."""
    clock = SimClock(T0, 6 * 3600, 60.0)
    assert clock.sim(T0 + 60_000) == 7 * 3600
    assert SimClock.describe(clock.sim(T0 + 24 * 60_000)) == "day 1 06:00"
    with pytest.raises(ValueError):
        SimClock(T0, 0, 0)


def test_messages_carry_no_personal_data() -> None:
    """Topics and payloads hold opaque ids, numbers and enum words only."""
    sim = make_sim(make_plan(2))
    msgs = run(sim, 600)
    for _, o in msgs:
        assert o.topic.isascii() and o.payload.isascii()
        assert all(part.isascii() for part in o.topic.split("/"))


def test_outbox_survives_device_death() -> None:
    """An un-acked press stays in the pendant's outbox across its death and reboot."""
    sim = make_sim(make_plan(1))
    sim.link_down("btn-h001")
    sim.inject("h001", "button", T0)
    sim.inject("h001", "device_death", T0, device="btn-h001")
    sim.inject("h001", "recover", T0 + 1000)
    out = sim.link_up("btn-h001", T0 + 2000)
    names = [(o.name, o.key) for o in out]
    assert names[0][0] == "status" and names[1] == ("button", (1, 1))
    assert decoded(out[0]).boot == 2  # type: ignore[union-attr]


def test_per_device_state_is_grouped_by_home() -> None:
    """Every device of the plan belongs to its home and starts at boot 1, seq 0."""
    sim = make_sim(make_plan(3))
    by_home = defaultdict(list)
    for d in sim.devices.values():
        by_home[d.home].append(d.plan.kind)
        assert (d.boot, d.seq) == (1, 0)
    assert set(by_home) == {"h001", "h002", "h003"}
    assert all(len(k) == 6 for k in by_home.values())

