"""A simulated population of homes: devices, messages on the wire, and ground truth.

    generate_home(seed, index, days, start_ms) -> HomeOutput

Pure and deterministic: a home depends only on (seed, index, days, start_ms), so
any set of homes can be generated in any process and the bytes are the same.
Messages follow wire contract v1 (DESIGN.md §3) exactly; they are what the central
broker would hand a subscriber, in receive order, including retained status at
the start, Last Wills of devices that drop off, and a gateway's late backlog.

What is in a home (docs/evaluation.md): 1-3 PIRs (battery, one may be a
multisensor that also reads the temperature), a door sensor (most homes), a bed
sensor (some), a smart plug (some: kitchen or TV socket), a separate temperature
sensor (some), an emergency button, a smoke detector (some), a gateway (some).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson

from dolbom.eval import life as lf
from dolbom.eval.climate import Climate, site_heatwaves
from dolbom.eval.people import draw_person, habits
from dolbom.eval.truth import CONDITION, FAULT, Item
from dolbom.eval.wire import Device, Writer, apply_outages, emit_device, status_payload

MIN_MS = lf.MIN_MS
HOUR_MS = lf.HOUR_MS
DAY_MS = 86_400_000
KST = timezone(timedelta(hours=9))
# The calendar is nominal (docs/evaluation.md): a Monday, local midnight in Seoul.
DEFAULT_START_MS = int(datetime(2025, 8, 4, tzinfo=KST).timestamp() * 1000)
HOMES_PER_SITE = 50
HOT_C, COLD_C = 32.0, 10.0

# Chance that a home has each thing (docs/evaluation.md lists them all).
P_DOOR, P_BED, P_PLUG, P_BUTTON, P_SMOKE, P_GATEWAY = 0.9, 0.35, 0.55, 0.97, 0.6, 0.35
P_SEPARATE_TEMP, P_NO_AC = 0.3, 0.45
MAJOR = (("collapse_residual", 0.02), ("collapse_still", 0.02), ("death", 0.01),
         ("fall_still", 0.02), ("hospital", 0.06))
P_PIR_DEAD, P_PIR_BLIND, P_FLAT_BATTERY = 0.03, 0.02, 0.04
P_UNPLUGGED, P_OUTAGE, P_SUN = 0.06, 0.25, 0.08


def site_of(index: int) -> str:
    return f"s{index // HOMES_PER_SITE:03d}"


def home_of(index: int) -> str:
    return f"h{index:05d}"


@dataclass(slots=True)
class HomeOutput:
    """One home: its homes.json entry, its messages (rx_ms, line) and its truth."""

    spec: dict[str, Any]
    lines: list[tuple[int, bytes]]
    truth: list[Item]
    wandering: bool
    habits: tuple[str, ...] = ()
    messages: list[tuple[int, str, dict[str, Any] | str]] = field(default_factory=list)


def _intervals(pred_minutes: list[int], step: int) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for m in pred_minutes:
        if out and m - out[-1][1] <= step:
            out[-1] = (out[-1][0], m + step)
        else:
            out.append((m, m + step))
    return out


def _pick(rng: random.Random, table: tuple[tuple[str, float], ...]) -> str | None:
    x = rng.random()
    for name, p in table:
        x -= p
        if x < 0:
            return name
    return None


def generate_home(seed: int, index: int, days: int, start_ms: int = DEFAULT_START_MS,
                  force: frozenset[str] = frozenset()) -> HomeOutput:
    """One home of the population: devices, life, faults, messages and truth.

    ``force`` makes a home have a thing it would otherwise draw by chance (tests):
    a major incident name, ``pir_dead``, ``pir_blind``, ``flat_battery``,
    ``unplugged``, ``gateway_outage``, ``sun_spike``.
    """
    rng = random.Random(f"{seed}/home/{index}")
    site, home = site_of(index), home_of(index)
    person = draw_person(rng, days)
    weekday0 = datetime.fromtimestamp(start_ms / 1000, KST).weekday()
    life = lf.paint_days(person, random.Random(f"{seed}/days/{index}"), days, weekday0)
    end_ms = start_ms + days * DAY_MS

    # ---- devices
    devices: list[Device] = []
    gateway = rng.random() < P_GATEWAY or "gateway_outage" in force
    sun = rng.random() < P_SUN or "sun_spike" in force
    separate_temp = sun or rng.random() < P_SEPARATE_TEMP
    multisensor = sun or not separate_temp
    n_pir = rng.choices((1, 2, 3), (0.3, 0.45, 0.25))[0]

    def battery(role: str, kind: str, hb: int, i: int = 0) -> Device:
        return Device(f"{home}-{role}{i or ''}", kind, role, "battery", hb, rng.randint(1, 40),
                      via_gateway=gateway, battery0=rng.uniform(35, 100),
                      drain_per_day=rng.uniform(0.02, 0.3), temp_offset=rng.gauss(0, 0.4))

    for i in range(1, n_pir + 1):
        kind = "multisensor" if i == 1 and multisensor else "pir"
        d = battery("pir", kind, rng.randrange(300, 901, 60), i)
        d.reads_temp = kind == "multisensor"
        devices.append(d)
    if rng.random() < P_DOOR:
        devices.append(battery("door", "door", rng.choice((900, 1800, 3600))))
    if rng.random() < P_BED:
        devices.append(battery("bed", "bed", rng.choice((600, 900))))
    if separate_temp:
        d = battery("temp", "temperature", rng.choice((300, 600, 900)))
        d.reads_temp = True
        devices.append(d)
    if rng.random() < P_BUTTON:
        devices.append(battery("button", "button", 3600))
    if rng.random() < P_SMOKE:
        devices.append(battery("smoke", "smoke", 3600))
    plug_use = None
    if rng.random() < P_PLUG or "unplugged" in force:
        plug_use = "kitchen" if rng.random() < 0.6 else "tv"
        devices.append(Device(f"{home}-plug", "plug", "plug", "mains",
                              rng.choice((60, 120, 180, 300)), rng.randint(1, 40)))
    if gateway:
        devices.append(Device(f"{home}-gw", "gateway", "gateway", "mains", 300,
                              rng.randint(1, 20)))
    by_role: dict[str, list[Device]] = {}
    for d in devices:
        by_role.setdefault(d.role, []).append(d)

    # ---- incidents, absences (life), climate
    major = _pick(rng, MAJOR)
    major = next((m for m, _ in MAJOR if m in force), major)
    lf.paint_incidents(life, person, random.Random(f"{seed}/incidents/{index}"), major,
                       plug_use is not None)
    no_ac = rng.random() < P_NO_AC
    heat = {w.day: w.intensity * (rng.uniform(6.5, 10.5) if no_ac else rng.uniform(0.5, 2.5))
            for w in site_heatwaves(seed, site, days)}
    climate = Climate(rng.uniform(22.5, 27.5), rng.uniform(0.8, 2.2), heat, tuple(life.cold))
    truth = [Item(site, home, i.category, i.type, start_ms + i.start_ms, start_ms + i.end_ms,
                  i.device, i.told) for i in life.truth]
    n_min = days * lf.DAY_MIN
    for kind, minutes in (("hot_room", [m for day in heat for m in range(
                               day * lf.DAY_MIN, min(n_min, (day + 2) * lf.DAY_MIN), 5)
                           if climate.at(m) >= HOT_C]),
                          ("cold_room", [m for a, b, _ in life.cold
                                         for m in range(a, min(n_min, b + 180), 5)
                                         if climate.at(m) <= COLD_C])):
        for a, b in _intervals(sorted(set(minutes)), 5):
            truth.append(Item(site, home, CONDITION, kind, start_ms + a * MIN_MS,
                              start_ms + min(n_min, b) * MIN_MS))

    # ---- sensor faults
    dead_at: dict[str, int] = {}
    blind_from: dict[str, int] = {}
    pirs = by_role["pir"]

    def t_fault() -> int:
        return start_ms + rng.randrange(DAY_MS, max(DAY_MS + 1, end_ms - start_ms - HOUR_MS))

    if rng.random() < P_PIR_DEAD or "pir_dead" in force:
        d = rng.choice(pirs)
        dead_at[d.id] = t_fault()
        truth.append(Item(site, home, FAULT, "pir_dead", dead_at[d.id], end_ms, d.id))
    if rng.random() < P_PIR_BLIND or "pir_blind" in force:
        d = rng.choice([p for p in pirs if p.id not in dead_at] or pirs)
        if d.id not in dead_at:
            blind_from[d.id] = t_fault()
            truth.append(Item(site, home, FAULT, "pir_blind", blind_from[d.id], end_ms, d.id))
    batteries = [d for d in devices if d.power == "battery" and d.id not in dead_at]
    if batteries and (rng.random() < P_FLAT_BATTERY or "flat_battery" in force):
        d = rng.choice(batteries)
        d.battery0, d.drain_per_day = rng.uniform(14, 30), rng.uniform(1.0, 3.0)
    low_at: dict[str, int] = {}
    for d in devices:
        if d.power != "battery" or d.drain_per_day <= 0:
            continue
        t20 = start_ms + int((d.battery0 - 20) / d.drain_per_day * DAY_MS)
        t0 = start_ms + int((d.battery0 - 2) / d.drain_per_day * DAY_MS)  # it browns out at 2 %
        dead = min(dead_at.get(d.id, end_ms), t0)
        if t20 < min(end_ms, dead):
            low_at[d.id] = max(start_ms, t20)
            truth.append(Item(site, home, FAULT, "battery_low", max(start_ms, t20), dead, d.id))
        if t0 < end_ms and t0 < dead_at.get(d.id, end_ms):
            dead_at[d.id] = t0
            truth.append(Item(site, home, FAULT, "battery_dead", t0, end_ms, d.id))
    unplugged: list[tuple[int, int]] = []
    if plug_use and (rng.random() < P_UNPLUGGED or "unplugged" in force):
        a = t_fault()
        b = min(end_ms, a + rng.randint(1, 10) * DAY_MS)
        unplugged.append((a, b))
        truth.append(Item(site, home, FAULT, "plug_unplugged", a, b, by_role["plug"][0].id))
    outages: list[tuple[int, int]] = []
    if gateway and (rng.random() < P_OUTAGE or "gateway_outage" in force):
        for _ in range(rng.choice((1, 1, 2))):
            a = t_fault()
            b = min(end_ms - MIN_MS, a + int(rng.uniform(0.5, 10) * HOUR_MS))
            if b > a and all(b < x or a > y for x, y in outages):
                outages.append((a, b))
                truth.append(Item(site, home, FAULT, "gateway_outage", a, b, f"{home}-gw"))
        outages.sort()
    spikes: dict[str, list[tuple[int, int, float]]] = {}
    if sun:
        d = rng.choice([x for x in devices if x.reads_temp])
        for day in range(days):
            if rng.random() < 0.55:
                a = day * lf.DAY_MIN + int(rng.uniform(13.0, 16.0) * 60)
                b = a + int(rng.uniform(60, 120))
                peak = rng.uniform(33.0, 38.0)
                spikes.setdefault(d.id, []).append((a, b, peak))
                truth.append(Item(site, home, FAULT, "sun_spike", start_ms + a * MIN_MS,
                                  start_ms + b * MIN_MS, d.id))

    # ---- messages
    w = Writer(site)
    grid = life.grid
    gen = random.Random(f"{seed}/messages/{index}")

    def state_at(t: int) -> int:
        m = (t - start_ms) // MIN_MS
        return grid[m] if 0 <= m < n_min else lf.SLEEP

    def reading_temp(d: Device, t: int) -> float:
        m = (t - start_ms) / MIN_MS
        v = climate.at(m) + d.temp_offset + gen.gauss(0, 0.1)
        for a, b, peak in spikes.get(d.id, ()):
            if a - 15 <= m <= b + 15:
                ramp = min(1.0, (m - a + 15) / 30, (b + 15 - m) / 30)
                v += max(0.0, ramp) * (peak - climate.at((a + b) / 2))
        return round(v, 1)

    cook_w = gen.uniform(550, 1150)
    tv_w = gen.uniform(55, 140)
    standby_w = gen.choice((0.0, gen.uniform(0.5, 3.5)))

    def power(t: int) -> float:
        s = state_at(t)
        if plug_use == "kitchen" and s == lf.COOK:
            return round(cook_w * gen.uniform(0.85, 1.05), 1)
        if plug_use == "tv" and s == lf.TV:
            return round(tv_w * gen.uniform(0.9, 1.1), 1)
        return round(standby_w * gen.uniform(0.9, 1.1), 1)

    # Motion: at most one hit a minute in the home, each seen by the PIR of the room.
    hits: dict[str, list[int]] = {d.id: [] for d in pirs}
    bedroom = pirs[1] if len(pirs) > 1 else pirs[0]
    kitchen = pirs[2] if len(pirs) > 2 else pirs[0]
    motion_p = [p * person.liveliness for p in lf.MOTION_PER_MIN]
    for m in range(n_min):
        s = grid[m]
        p = motion_p[s]
        if p == 0.0:
            continue
        if s not in lf.OTHERS_MOVE:
            p *= life.factor[m // lf.DAY_MIN]
        if gen.random() < p:
            if s in (lf.SLEEP, lf.NAP, lf.BATH):
                d = bedroom
            elif s == lf.COOK:
                d = kitchen
            else:
                d = gen.choice(pirs)
            hits[d.id].append(start_ms + m * MIN_MS + gen.randrange(1_000, 59_000))
    for t in life.residual:
        hits[gen.choice(pirs).id].append(start_ms + t + gen.randrange(0, 59_000))
    # Doors and bed: transitions of the grid.
    door_ev: list[tuple[int, str]] = []
    bed_ev: list[tuple[int, str]] = []
    prev = grid[0] if n_min else lf.SLEEP
    for m in range(1, n_min):
        cur = grid[m]
        if cur == prev:
            continue
        t = start_ms + m * MIN_MS + gen.randrange(0, 30_000)
        crosses = ((prev in lf.AWAY) != (cur in lf.AWAY)
                   or (prev == lf.VISITED) != (cur == lf.VISITED)
                   or (prev == lf.RESCUE) != (cur == lf.RESCUE)) and not (
                       prev in lf.AWAY and cur in lf.AWAY)
        if crosses and not (prev == lf.RESCUE and cur in lf.AWAY and cur != lf.ABSENT):
            door_ev += [(t, "open"), (t + gen.randrange(8_000, 45_000), "closed")]
        was = prev == lf.SLEEP or (prev == lf.NAP and person.nap_in_bed)
        now = cur == lf.SLEEP or (cur == lf.NAP and person.nap_in_bed)
        if was != now and lf.DEAD not in (cur, prev):
            bed_ev.append((t, "in" if now else "out"))
        prev = cur
    for m in life.chores:
        if grid[m] not in lf.FREE:
            continue  # painted over by an incident or an absence
        t = start_ms + m * MIN_MS + gen.randrange(0, 50_000)
        door_ev += [(t, "open"), (t + gen.randrange(5_000, 90_000), "closed")]
    door_ev.sort()

    # Per device: (ts, topic leaf, payload body) in device-time order, then envelopes.
    for d in devices:
        items: list[tuple[int, str, dict[str, Any]]] = []
        phase = gen.randrange(0, d.hb_s * 1000)
        stop = min(dead_at.get(d.id, end_ms), end_ms)
        beats = range(start_ms + phase, stop, d.hb_s * 1000)
        status_every = max(1, 3600 // d.hb_s)
        for k, beat in enumerate(beats):
            t = beat + (gen.randrange(-2_000, 2_000) if k else 0)
            readings: dict[str, float] = {}
            if d.role == "plug":
                readings["power_w"] = power(t)
            elif d.role == "gateway":
                readings["rssi_dbm"] = float(gen.randrange(-75, -40))
            else:
                if d.reads_temp:
                    readings["temperature_c"] = reading_temp(d, t)
                days_in = (t - start_ms) / DAY_MS
                readings["battery_pct"] = round(max(0.0, d.battery0
                                                    - d.drain_per_day * days_in), 1)
            items.append((t, "telemetry", {"readings": readings}))
            if d.power == "battery" and k % status_every == status_every - 1:
                items.append((t + 50, "status", status_payload(d, "sleeping")))
        if d.role == "pir":
            blind = blind_from.get(d.id, end_ms)
            items += [(t, "event/motion", {}) for t in hits[d.id] if t < min(blind, stop)]
        elif d.role == "door":
            items += [(t, "event/door", {"val": v}) for t, v in door_ev if t < stop]
        elif d.role == "bed":
            items += [(t, "event/bed", {"val": v}) for t, v in bed_ev if t < stop]
        elif d.role == "button":
            items += [(start_ms + t, "event/button", {}) for t in life.presses
                      if start_ms + t < stop]
        if d.id in low_at and low_at[d.id] > start_ms:
            items.append((low_at[d.id], "event/battery_low", {"val": 20}))
        items.sort(key=lambda x: x[0])
        emit_device(w, d, items, start_ms, gen, unplugged if d.role == "plug" else [],
                     dead_at.get(d.id))
    if gateway:
        apply_outages(w, site, home, devices, outages, gen)

    # ---- output
    spec: dict[str, Any] = {"site": site, "home": home, "timezone": "Asia/Seoul",
                            "devices": [d.spec() for d in devices]}
    if person.wandering:
        spec["flags"] = ["wandering"]
    if life.modes:
        spec["modes"] = [{"t_ms": start_ms + t, "mode": mode} for t, mode in sorted(life.modes)]
    w.out.sort(key=lambda x: (x[0], x[3]))
    lines = [(rx, orjson.dumps({"rx_ms": rx, "topic": topic, "payload": payload}))
             for rx, topic, payload, _ in w.out]
    out = HomeOutput(spec, lines, sorted(truth, key=lambda i: (i.start_ms, i.type)),
                     person.wandering, habits(person, plug_use))
    out.messages = [(rx, topic, payload) for rx, topic, payload, _ in w.out]
    return out
