"""The alert rules engine (DESIGN.md §5): pure functions over a compact per-home state.

    initial_state(cfg, now)          -> state
    observe(cfg, state, observation) -> (state, actions)
    tick(cfg, state, now)            -> (state, actions)
    next_deadline(cfg, state)        -> ms or None: when tick() must be called next
    feedback(cfg, state, rule, outcome) -> state: a worker's recorded outcome
    state_to_bytes / state_from_saved -> persisted, so timers survive a restart
    state_to_json / state_from_json  -> the same by name (saved before; tests, debugging)
                                        (rules/state_json.py)

No I/O and no clock: every time is an int of ms UTC passed in. The service keeps
one state per home, feeds it observations, calls ``tick`` from a timer heap at
``next_deadline`` (300,000 homes are never polled) and carries out the actions:
``Raise`` / ``Clear`` / ``Suppressed`` into the alert journal.

Determinism: the actions depend only on the observations and the times passed in,
not on when ``tick`` happens to run. ``observe`` first fires whatever matured
before the observation (so a late timer cannot let a message wipe out an alert that
was due), and a timed Raise carries the moment its condition matured as ``at_ms``.
Ticking at every ``next_deadline``, every minute, or once at the end gives the same
actions (tested as a property).

Observation times: ``at_ms`` of a live observation is when it was received (the
service's clock) and moves the home's time on; ``at_ms`` of replayed activity and
readings (``hist``) is when they happened, so they update history (a newer last
activity, a newer power use) but neither prove a device alive now nor raise.

Configuration changes need no special call: the state remembers the devices and
thresholds it was built for (``HomeState.tag``) and the mode last applied, and the
next call re-keys device records by id, re-times its cached clocks, and restarts
the welfare clocks when the home returns to normal mode. A new mode holds from the
time of the first call that sees it (what matured before is judged under the old
one); a new device list or thresholds apply to everything not yet fired, so the
service should ``tick`` the home with the old configuration just before swapping
it if it has fallen behind its deadlines.

Inside one call the rules work on ``Work``, an unpacked scratch copy; the call
returns a new packed ``HomeState`` (or the same object if nothing changed), so
the caller's state is never modified.
"""

from __future__ import annotations

import struct

from dolbom.alerts.model import Outcome, Rule
from dolbom.alerts.rules import (
    baseline,
    bed,
    devices,
    door,
    inactivity,
    life_safety,
    power,
    quiet,
    temperature,
)
from dolbom.alerts.rules.actions import Action, Clear, Raise, Suppressed, Watch
from dolbom.alerts.rules.base import (
    BIT,
    I64,
    NEVER,
    NORMAL,
    REC,
    DeviceInfo,
    HomeConfig,
    lost_deadline,
)
from dolbom.alerts.rules.heartbeat import heard_all, heartbeat
from dolbom.alerts.rules.observations import (
    ActivityObs,
    DeviceEventObs,
    LifeSafetyObs,
    Observation,
    ReadingObs,
    Seen,
    StatusObs,
)
from dolbom.alerts.rules.silence import TimedRule, suppress
from dolbom.alerts.rules.state import HOME, TIMERS_SIZE, HomeState, Work
from dolbom.alerts.rules.state_json import (
    state_from_bytes,
    state_from_json,
    state_from_saved,
    state_to_bytes,
    state_to_json,
)

__all__ = [
    "Action",
    "ActivityObs",
    "Clear",
    "DeviceEventObs",
    "DeviceInfo",
    "HomeConfig",
    "HomeState",
    "LifeSafetyObs",
    "Observation",
    "Raise",
    "ReadingObs",
    "Seen",
    "StatusObs",
    "Suppressed",
    "Watch",
    "feedback",
    "heard",
    "initial_state",
    "next_deadline",
    "observe",
    "state_from_bytes",
    "state_from_json",
    "state_from_saved",
    "state_to_bytes",
    "state_to_json",
    "tick",
]

# The silence rules, in the order they fire when they mature at the same ms (after
# device-lost verdicts, which come first: "before and instead of", DESIGN.md §5).
TIMED: tuple[TimedRule, ...] = (inactivity, quiet, door, bed, power, temperature)
NOT_ALIVE = frozenset({"lost", "disconnected"})  # the Last Will / a goodbye: no sign of life


def initial_state(cfg: HomeConfig, now_ms: int) -> HomeState:
    """A new home: every device just heard and every clock starting now (a new home is
    not "inactive since 1970")."""
    th = cfg.thresholds
    learned = baseline.Learned.fresh()
    baseline.prior(learned, th.timezone, th.sleep_start, th.sleep_end)
    learned.motion_ms = baseline.sec(now_ms)
    w = Work(
        tag=cfg.tag,
        devs=bytearray(b"".join(REC.pack(now_ms, 0, 0, now_ms + after)
                                for after in cfg.lost_ms)),
        learned_raw=learned.pack(),
        mode=cfg.mode_index,
        lost=0,
        battery_low=0,
        hot=0,
        cold=0,
        activity_ms=now_ms,
        inact_tier=0,
        inact_at=inactivity.lower_bound(cfg, now_ms, 0),
        inact_exact=False,
        door_ms=now_ms,
        power_ms=now_ms,
        bed_out_ms=0,
        heat_raised_ms=0,
        cold_raised_ms=0,
        raised=0,
        pending=0,
        quiet=0,
        timed_ms=0,
        due_ms=0,
    )
    quiet.arm(cfg, w, now_ms)
    return _done(cfg, w, None)


def observe(cfg: HomeConfig, state: HomeState, obs: Observation) -> tuple[HomeState, list[Action]]:
    """Apply one observation (already validated by ``dolbom.protocol``)."""
    # A heartbeat, or readings no rule reads (a bed sensor's heart rate, a signal
    # strength): nothing but a sign of life, as the general path would find.
    if (type(obs) is Seen or (type(obs) is ReadingObs and not obs.hist
                              and RULE_READINGS.isdisjoint(obs.readings))) and (
            fast := heartbeat(cfg, state, obs)) is not None:
        return fast, []
    acts: list[Action] = []
    at = obs.at_ms
    # Replayed activity and readings carry their own (past) time; everything else,
    # a replayed life-safety event included, is stamped with when it was received.
    hist = isinstance(obs, ActivityObs | ReadingObs) and obs.hist
    w = Work.thaw(state)
    _fit(cfg, w, at, acts, live=not hist)
    if not hist and w.due_ms and w.due_ms < at:
        # What matured strictly before this message fires first; at the same ms the
        # message wins (activity at exactly 12 h is activity, not inactivity).
        _advance(cfg, w, at - 1, acts)
    if isinstance(obs, LifeSafetyObs):
        acts.append(life_safety.on_event(obs))
    i = cfg.index(obs.device)
    if i >= 0 and not (isinstance(obs, StatusObs) and obs.state in NOT_ALIVE):
        _from_device(cfg, w, i, obs, hist, acts)
    return _done(cfg, w, state), acts


def heard(cfg: HomeConfig, state: HomeState, times: list[int | None],
          ) -> tuple[HomeState, list[Action]]:
    """When each device of the home was last heard (``times[i]`` for device ``i``; None:
    not known), as a restart reads it from the registry: one ``Seen`` per device, in
    device order, in one pass over the packed state when that gives the same."""
    fast = heard_all(cfg, state, times)
    if fast is not None:
        return fast, []
    acts: list[Action] = []
    for dev, at in zip(cfg.ids, times, strict=True):
        if at is not None:
            state, more = observe(cfg, state, Seen(dev, at))
            acts += more
    return state, acts


def tick(cfg: HomeConfig, state: HomeState, now_ms: int) -> tuple[HomeState, list[Action]]:
    """Fire everything that has matured by ``now_ms``, in the order it matured."""
    acts: list[Action] = []
    w = Work.thaw(state)
    _fit(cfg, w, now_ms, acts, live=True)
    _advance(cfg, w, now_ms, acts)
    return _done(cfg, w, state), acts


def unheard(cfg: HomeConfig, state: HomeState, now_ms: int) -> HomeState:
    """The rules could not hear this home until ``now_ms`` (their stream from the broker was
    down; the devices could not reach it either): that silence says nothing about the
    devices, so none is judged lost for it. Each device's lost deadline counts again from
    now, with its own interval; one that was dying meanwhile is lost that much later. The
    same object if nothing moves."""
    w = Work.thaw(state)
    changed = False
    for i in range(len(cfg.ids)):
        seen, next_s, temp, deadline = REC.unpack_from(w.devs, i * REC.size)
        if w.lost >> i & 1 and deadline != NEVER:  # unknown behind its gateway, pending
            fresh = devices.pending_deadline(cfg, i, now_ms, next_s)
        else:
            fresh = lost_deadline(cfg, i, now_ms, next_s, w.lost)
        if fresh > deadline:
            REC.pack_into(w.devs, i * REC.size, seen, next_s, temp, fresh)
            changed = True
    return _done(cfg, w, state) if changed else state


# What a worker's recorded outcome teaches the home's concern (DESIGN.md §5): an alert
# that was nothing makes it less eager, one that found someone in need more eager.
LESS_EAGER = frozenset({Outcome.FALSE_ALARM, Outcome.VISITED_OK})
MORE_EAGER = frozenset({Outcome.NEEDS_CARE, Outcome.EMERGENCY_DISPATCHED,
                        Outcome.HOSPITALISED, Outcome.DECEASED})
FEEDBACK_RULES = frozenset({Rule.WELFARE_CONCERN, Rule.INACTIVITY})


def feedback(cfg: HomeConfig, state: HomeState, rule: Rule, outcome: Outcome) -> HomeState:
    """A worker resolved an alert of ``rule`` with ``outcome``: a concern that was nothing
    makes this home's concern a step less eager (up to three), one that found someone in
    need a step more (the threshold moves by a quarter a step, ``baseline.EAGER_STEP``).
    The same object if nothing changes."""
    if rule not in FEEDBACK_RULES:
        return state
    step = -1 if outcome in LESS_EAGER else 1 if outcome in MORE_EAGER else 0
    w = Work.thaw(state)
    eager = min(baseline.EAGER_MAX, max(baseline.EAGER_MIN, w.learn.eager + step))
    if eager == w.learn.eager:
        return state
    w.learn.eager = eager
    w.learn.flags &= ~baseline.QUICK_EXACT  # the running spell's crossing moves
    L = w.learn
    if L.quick_at and cfg.motion:
        L.quick_at = baseline.lower_bound(L, L.spell_ms, cfg.thresholds.timezone)
    return _done(cfg, w, state)


def next_deadline(cfg: HomeConfig, state: HomeState) -> int | None:
    """The earliest ms at which ``tick`` could produce an action (never later; it may be
    earlier, e.g. a lower bound of the sleep-aware inactivity crossing, and a tick
    then just re-arms). None: nothing is armed until the next observation."""
    if state.tag != cfg.tag:
        w = Work.thaw(state)
        _rekey(cfg, w, max((r[0] for r in REC.iter_unpack(w.devs)), default=0), [])
        item = _next_due(cfg, w)
        return None if item is None else item[0]
    data = state.data
    due: int = I64.unpack_from(data, len(data) - I64.size)[0]  # the last field of HOME
    return due or None


# --- one observation from one of the home's devices -------------------------------------------


def _from_device(cfg: HomeConfig, w: Work, i: int, obs: Observation, hist: bool,
                 acts: list[Action]) -> None:
    at = obs.at_ms
    if isinstance(obs, StatusObs):
        devices.announce(cfg, w, i, obs.next_s)
        if obs.outbox is not None:
            devices.on_outbox(cfg, w, i, obs.outbox, at, acts)
    if not hist:  # a replayed event's time says when it happened, not that the device is up
        was_lost = w.lost
        devices.heard(cfg, w, i, at, acts)
        if was_lost & ~w.lost:
            _regained(cfg, w, i, was_lost, at)
    if isinstance(obs, ActivityObs):
        quiet.on_activity(cfg, w, i, obs, acts)  # learns the spell: before it is reset
        inactivity.on_activity(cfg, w, at, acts)
        if obs.type == "door":
            door.on_door(cfg, w, obs, acts)
        elif obs.type == "bed":
            bed.on_bed(cfg, w, obs, acts)
    elif isinstance(obs, ReadingObs):
        _reading(cfg, w, i, obs, acts)
    elif isinstance(obs, DeviceEventObs):
        if obs.type == "tamper":
            acts.append(devices.tamper(cfg, i, at))
        elif obs.type == "battery_low":
            devices.battery_low(cfg, w, i, None, at, acts)
    if w.pending and not hist:
        _confirm(cfg, w, i, acts)


# The readings ``_reading`` looks at; a live reading with none of them is a heartbeat
# (``observe``). A rule that reads another must add it here.
RULE_READINGS = frozenset({"power_w", "temperature_c", "battery_pct"})


def _reading(cfg: HomeConfig, w: Work, i: int, obs: ReadingObs, acts: list[Action]) -> None:
    r = obs.readings
    watts = r.get("power_w")
    if watts is not None:
        power.on_power(cfg, w, watts, obs.at_ms, acts)
    if obs.hist:
        return  # replayed history: stored by ingest, not a current temperature or charge
    celsius = r.get("temperature_c")
    if celsius is not None:
        temperature.on_temperature(cfg, w, i, celsius, obs.at_ms, acts)
    pct = r.get("battery_pct")
    if pct is not None:
        devices.on_battery(cfg, w, i, pct, obs.at_ms, acts)


def _confirm(cfg: HomeConfig, w: Work, i: int, acts: list[Action]) -> None:
    """Device ``i`` was just heard: it vouches for the pending verdicts it could see."""
    seen = w.seen(i)
    for rule in TIMED:
        if w.pending & BIT[rule.RULE] and rule.mask(cfg) >> i & 1:
            at = rule.crossing(cfg, w)
            if at is not None and seen >= at:
                rule.confirm(cfg, w, acts)


def _regained(cfg: HomeConfig, w: Work, i: int, was_lost: int, at: int) -> None:
    """Device ``i`` is back. A silence rule that had no working sensor restarts its clock
    now: the silence it could not see is no evidence ("silence is not safety")."""
    for rule in TIMED:
        m = rule.mask(cfg)
        if m >> i & 1 and not m & ~was_lost:
            rule.restart(cfg, w, at)


# --- the timer loop ---------------------------------------------------------------------------


def _next_due(cfg: HomeConfig, w: Work) -> tuple[int, int, int] | None:
    """(time, order, device) of the next thing to fire: order 0 = device lost, else the
    1-based position in TIMED."""
    lost = devices.due(cfg, w)
    best = None if lost is None else (lost[0], 0, lost[1])
    for order, rule in enumerate(TIMED, 1):
        t = rule.due(cfg, w)
        if t is not None and (best is None or (t, order) < best[:2]):
            best = (t, order, -1)
    return best


def _advance(cfg: HomeConfig, w: Work, now: int, acts: list[Action]) -> None:
    while (item := _next_due(cfg, w)) is not None and item[0] <= now:
        at, order, i = item
        if order:
            TIMED[order - 1].fire(cfg, w, at, acts)
            continue
        devices.fire(cfg, w, i, at, acts)
        # A pending verdict whose sensors are now all lost will never be confirmed.
        for rule in TIMED:
            if w.pending & BIT[rule.RULE] and not rule.mask(cfg) & ~w.lost:
                suppress(w, rule.RULE, at, rule.LOST_REASON, acts)


def _done(cfg: HomeConfig, w: Work, before: HomeState | None) -> HomeState:
    """Pack ``w`` with its next deadline; the same object as ``before`` if unchanged."""
    learned = w.learned_bytes()
    home = w.pack_home()
    if before is None or w.tag != before.tag or _moves_timers(w, home, learned, before.data):
        # Only the home's scalars and baselines (and the configuration: the tag) move
        # the silence rules.
        w.timed_ms = min((t for rule in TIMED if (t := rule.due(cfg, w)) is not None), default=0)
    w.due_ms = _due(cfg, w.devs, w.timed_ms)
    st = HomeState(w.tag, b"".join((w.devs, learned, home[:-TIMERS_SIZE],
                                    _TIMERS.pack(w.timed_ms, w.due_ms))))
    return before if before is not None and st == before else st


_TIMERS = struct.Struct("<2q")  # the last two fields of HOME: timed_ms, due_ms
_T0, _T1 = baseline.TEMP_SPAN


def _moves_timers(w: Work, home: bytes, learned: bytes, data: bytes) -> bool:
    """Whether the silence rules' deadlines may have moved since the state ``data`` (of
    the same configuration): its scalars or its baselines changed. A new temperature
    reading kept in the baselines (``TEMP_SPAN``) moves none while no room is hot or
    cold: no other rule reads it, and the temperature rule has no deadline then."""
    end = len(data) - HOME.size
    if home[:-TIMERS_SIZE] != data[end:-TIMERS_SIZE]:
        return True
    start = end - baseline.LEARN.size
    if learned == data[start:end]:
        return False
    return bool(w.hot or w.cold or learned[:_T0] != data[start:start + _T0]
                or learned[_T1:] != data[start + _T1:end])


def _due(cfg: HomeConfig, records: bytes | bytearray, timed: int) -> int:
    """The next deadline (0: none): the next device to be lost or the next silence rule."""
    nxt = devices.next_lost(cfg, records)
    if nxt is None:
        return timed
    return min(nxt[0], timed) if timed else nxt[0]


# --- configuration changes --------------------------------------------------------------------


def _fit(cfg: HomeConfig, w: Work, now: int, acts: list[Action], *, live: bool) -> None:
    """Bring the state in line with the configuration (devices, thresholds, mode)."""
    if w.tag != cfg.tag:
        _rekey(cfg, w, now, acts)
    else:
        # An equal tag (a state read back from the database, or a configuration re-read
        # unchanged but for its mode): share the configuration's, not a copy per home.
        w.tag = cfg.tag
    if live and w.mode != cfg.mode_index:
        # The new mode holds from ``now``: what matured before is judged under the old one.
        _advance(cfg, w, now - 1, acts)
        w.mode = cfg.mode_index
        if cfg.mode_index == NORMAL:
            # Back home: the welfare clocks start now; what happened away is not silence.
            for rule in TIMED:
                rule.restart(cfg, w, now)
            w.quiet = 0


def _tags(tag: bytes) -> tuple[int, ...]:
    return struct.unpack(f"<{len(tag) // 4}I", tag)


def _rekey(cfg: HomeConfig, w: Work, now: int, acts: list[Action]) -> None:
    """Re-key device records by device id after the registry changed the home's devices
    (a new device starts as just heard) and re-time the cached clocks if the rules'
    settings changed. Alerts about devices that left the home are cleared."""
    old, new = _tags(w.tag), _tags(cfg.tag)
    old_recs = list(REC.iter_unpack(w.devs))
    if len(old_recs) != len(old) - 1:
        old_recs, old = [], (0,)  # inconsistent: start the devices afresh
    hint = max([now] + [r[0] for r in old_recs])
    where = {t: i for i, t in enumerate(old[:-1])}
    recs: list[tuple[int, int, int, int]] = []
    masks = [0, 0, 0, 0]
    for j, t in enumerate(new[:-1]):
        i = where.get(t)
        if i is None:
            recs.append((hint, 0, 0, NEVER))
            continue
        recs.append(old_recs[i])
        for k, m in enumerate((w.lost, w.battery_low, w.hot, w.cold)):
            masks[k] |= (m >> i & 1) << j
    w.tag = cfg.tag
    w.lost, w.battery_low, w.hot, w.cold = masks
    w.devs = bytearray(b"".join(  # lost deadlines re-armed with the new settings
        REC.pack(seen, next_s, temp,
                 deadline if w.lost >> j & 1 and deadline != NEVER  # unknown, pending
                 else lost_deadline(cfg, j, seen, next_s, w.lost))
        for j, (seen, next_s, temp, deadline) in enumerate(recs)))
    if old[-1] != new[-1]:
        inactivity.rethreshold(cfg, w)
    gone = (
        (Rule.DEVICE_LOST, w.lost & ~cfg.gateways), (Rule.GATEWAY_LOST, w.lost & cfg.gateways),
        (Rule.BATTERY_LOW, w.battery_low), (Rule.HEAT, w.hot), (Rule.COLD, w.cold),
    )
    for rule, still in gone:
        if w.raised & BIT[rule] and not still:
            acts.append(Clear(rule, now, "device removed from the home"))
            w.raised &= ~BIT[rule]
            w.quiet &= ~BIT[rule]
    item = _next_due(cfg, w)
    w.due_ms = 0 if item is None else item[0]  # the cached one was for another config
