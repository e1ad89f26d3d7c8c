"""Personal baselines, learned online per home in bounded memory (DESIGN.md §5).

Fixed limits alone flood care workers: an early riser is "out of bed at night" every
morning, a rarely used plug is "not used" every day, and a person who naps after
lunch looks, to a 12-hour timer, exactly like a person who collapsed after lunch.
So each home learns, from its own data only:

* **when this person is usually active**: for each half hour of the local day, the
  chance that some activity sensor sees something (``p``, 48 bins, an exponentially
  weighted average: about ten days of memory);
* **how quiet this person's quiet spells usually get**: a quiet spell is scored by
  the *evidence* it carries, the sum over the half hours it covered of
  ``-ln(1 - p)``: an hour of no movement at a time when this person is nearly always
  up counts for a lot; the same hour at night, or at a time they are often out,
  counts for little. ``emax`` is the largest evidence of this person's ordinary
  spells that began in each quarter of the day (a slowly decaying maximum), so the
  quiet concern (``quiet.py``) can ask "is this spell far beyond anything ordinary for
  them, for a spell that began at this time of day?";
* **how long the plug and the door usually go unused** (``plug_gap``, ``door_gap``:
  decaying maxima of the ordinary gaps, in minutes);
* **how far this person's activity ordinarily thins out**: a collapsed person may still
  move a little, and every brief movement ends a quiet spell, so the evidence is also
  carried over brief movements (``carry``, less what each active half hour says against
  an incident; see ``_carry``), and the largest such run of ordinary days is kept
  (``tmax``), so that activity collapsing to a trickle is told too.

What is never learned: a spell that reached a fixed inactivity tier, one that ran
past the hard 24 h limit, time away or in hospital, time when the home's primary
sensors were lost, and a spell spent out (it began with the door; only ``p`` learns
from it); a spell that reached the quiet concern is learned only up to the
threshold it crossed, and so is the trickle's run if one was carried into it (an
incident is not normal; see ``on_activity``). The defaults
and hard limits of ``Thresholds`` apply while a home is new (``days`` < ``LEARN_DAYS``)
and always bound what is learned.

The state is ``Learned`` (``LEARN.size`` bytes: 137), packed into the home's rule state
between the device records and the home's scalars.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from dolbom.alerts.rules.clock import hhmm, zone

HALF_MS = 30 * 60_000
BINS = 48  # half hours in a day
QUARTERS = 4  # emax is kept per quarter of the local day
TEMP_SLOTS = 3  # devices whose last temperature is kept
OB_SLOTS = 2  # nodes whose outbox totals are kept
HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
ALPHA = 0.1  # learning rate of p (≈ 10 days)
DECAY = 0.97  # per day, of emax and the usual gaps
LEARN_DAYS = 7  # below this, a home is new: conservative defaults
P_MAX = 0.95  # no half hour is certain: one empty one is never overwhelming evidence
P_AWAKE, P_ASLEEP = 0.7, 0.1  # a new home's prior, from its sleep window
MAX_SPELL_BINS = 48  # spells longer than the 24 h hard limit are not learned
EAGER_MIN, EAGER_MAX = -3, 3

# flags
INIT = 1  # p holds a prior or learned values
DOOR_LAST = 2  # the spell began with a door event: the person probably went out
QUICK_EXACT = 4  # quick_at is exact, not a lower bound
INCIDENT = 8  # the concern was raised in this spell: learn it only up to its threshold
POWER_WATCHED = 16  # the no-power-use signal went to the watch list in this gap
DOOR_WATCHED = 32  # the no-door-use signal went to the watch list in this gap
COMBINED = 64  # the welfare concern is open for weak signals together (concern.py)
WATCHED_OUT = 128  # this spell went to the watch list as an absence: not learned

# Evidence of one empty half hour, by p × 255, with p capped at P_MAX.
EV = tuple(-math.log(1.0 - min(k / 255, P_MAX)) for k in range(256))
EV_MAX = EV[255]
Q_TRICKLE = 0.25  # how often a person who collapsed but still moves a little is seen
PEN_MIN = 1.0
REST_MIN = 1.0  # evidence a spell needs of its own to end a trickle in a concern
# What an active half hour says against a trickle, by p × 255 (see _carry).
PEN = tuple(max(PEN_MIN, math.log(max(k, 1) / 255 / Q_TRICKLE)) for k in range(256))


@dataclass(slots=True)
class Learned:
    """A home's baselines and the concern's bookkeeping (see the module docstring).

    Times are ms UTC like everywhere in the engine, but kept to the second (``LEARN``
    stores seconds): the rules only ever set them to whole seconds (``sec``)."""

    p: bytearray  # 48 × p × 255, by local half hour
    emax: list[int]  # usual largest quiet evidence × 100, by the quarter of the day (local)
    # the spell began in: an afternoon outing says nothing about how late they get up
    days: int  # local days learned
    mark: int  # absolute local half-hour of the last activity (0: none yet)
    day: int  # local day (days since 1970, to 2149) up to which the maxima have decayed
    plug_gap: int  # usual longest plug-idle gap, minutes (0: unknown)
    door_gap: int  # usual longest gap between door uses, minutes (0: unknown)
    flags: int
    eager: int  # -3..3: outcomes recorded by workers (more: more eager)
    night_day: int  # local day (mod 65,536) of the last restless-night watch item
    motion_ms: int  # last activity seen by a motion sensor (0: none yet)
    life_first_ms: int  # first sign of life that is not motion since motion_ms (0: none)
    life_ms: int  # last sign of life that is not motion (door, bed, plug switched on)
    spell_ms: int  # start of the current quiet spell (activity, or a restart)
    quick_at: int  # when the quiet concern matures (0: not armed); see QUICK_EXACT
    # The last temperature of up to TEMP_SLOTS devices, to compare a hot or cold reading
    # with the home's other sensors and with the same sensor's reading before it.
    temp_dev: list[int]  # device index + 1 (0: free slot)
    temp_c: list[int]  # °C × 10
    temp_min: list[int]  # when, in minutes since 1970
    temp_flags: list[int]  # JUMPED | DISPUTED, for the device's current hot/cold spell
    heat_level: int  # level of the last heat alert (0: none)
    cold_level: int
    # The outbox totals (evicted, failed writes) last reported by up to OB_SLOTS nodes,
    # so that only an increase is news (they are running totals on the node's flash;
    # kept saturating at 65,535).
    ob_dev: list[int]  # device index + 1 (0: free slot)
    ob_evicted: list[int]
    ob_werr: list[int]
    # The trickle (see ``_carry``): the evidence carried over brief movements × 100,
    # when the run that carries it began (0: none), its largest evidence so far × 100,
    # and the usual largest evidence of this person's ordinary runs × 100.
    carry: int
    run_ms: int
    peak: int
    tmax: int
    # Whether this home's motion sensors see the person who has just come in or switched
    # a plug on (``blind.py``): bit 7, the last sign of life that was not a movement
    # (life_ms) was one; bits 0-6, the last seven such signs, 1 for each that was
    # followed by a movement within minutes.
    seen_bits: int = 0

    @staticmethod
    def fresh() -> Learned:
        return Learned.unpack(bytes(LEARN.size))

    def pack(self) -> bytes:
        # Spelled out rather than looped over _SPEC: this runs on every engine call.
        return LEARN.pack(
            *self.p, *self.emax, self.days, self.mark, self.day, self.plug_gap,
            self.door_gap, self.flags, self.eager, self.night_day, self.motion_ms // 1000,
            self.life_first_ms // 1000, self.life_ms // 1000, self.spell_ms // 1000,
            self.quick_at // 1000, *self.temp_dev, *self.temp_c, *self.temp_min,
            *self.temp_flags, self.heat_level, self.cold_level, *self.ob_dev,
            *self.ob_evicted, *self.ob_werr, self.carry, self.run_ms // 1000, self.peak,
            self.tmax, self.seen_bits)

    @staticmethod
    def unpack(data: bytes | memoryview) -> Learned:
        v = LEARN.unpack(data)
        (days, mark, day, plug_gap, door_gap, flags, eager, night_day, motion, life_first,
         life, spell, quick) = v[_SCALARS:_SCALARS + 13]
        t, n = _SCALARS + 13, TEMP_SLOTS
        heat_level, cold_level = v[t + 4 * n:t + 4 * n + 2]
        o, m = t + 4 * n + 2, OB_SLOTS
        return Learned(
            bytearray(v[:BINS]), list(v[BINS:_SCALARS]), days, mark, day, plug_gap, door_gap,
            flags, eager, night_day, motion * 1000, life_first * 1000, life * 1000,
            spell * 1000, quick * 1000, list(v[t:t + n]), list(v[t + n:t + 2 * n]),
            list(v[t + 2 * n:t + 3 * n]), list(v[t + 3 * n:t + 4 * n]), heat_level,
            cold_level, list(v[o:o + m]), list(v[o + m:o + 2 * m]),
            list(v[o + 2 * m:o + 3 * m]), v[o + 3 * m], v[o + 3 * m + 1] * 1000,
            v[o + 3 * m + 2], v[o + 3 * m + 3], v[o + 3 * m + 4])


# (field, struct code, count, stored in units of): the order of Learned's fields.
_SPEC: tuple[tuple[str, str, int, int], ...] = (
    ("p", "B", BINS, 1), ("emax", "H", QUARTERS, 1), ("days", "B", 1, 1), ("mark", "I", 1, 1),
    ("day", "H", 1, 1), ("plug_gap", "H", 1, 1), ("door_gap", "H", 1, 1), ("flags", "B", 1, 1),
    ("eager", "b", 1, 1), ("night_day", "B", 1, 1), ("motion_ms", "I", 1, 1000),
    ("life_first_ms", "I", 1, 1000), ("life_ms", "I", 1, 1000), ("spell_ms", "I", 1, 1000),
    ("quick_at", "I", 1, 1000), ("temp_dev", "B", TEMP_SLOTS, 1),
    ("temp_c", "h", TEMP_SLOTS, 1), ("temp_min", "I", TEMP_SLOTS, 1),
    ("temp_flags", "B", TEMP_SLOTS, 1), ("heat_level", "B", 1, 1), ("cold_level", "B", 1, 1),
    ("ob_dev", "B", OB_SLOTS, 1), ("ob_evicted", "H", OB_SLOTS, 1),
    ("ob_werr", "H", OB_SLOTS, 1), ("carry", "H", 1, 1), ("run_ms", "I", 1, 1000),
    ("peak", "H", 1, 1), ("tmax", "H", 1, 1), ("seen_bits", "B", 1, 1),
)
# PACKED_VERSION 1 (state_json reads it still): days and night_day were "H", and
# seen_bits did not exist.
_SPEC_V1 = tuple((n, "H" if n in ("days", "night_day") else c, k, u)
                 for n, c, k, u in _SPEC if n != "seen_bits")
LISTS = frozenset(name for name, _, n, _ in _SPEC if n > 1)
_SCALARS = BINS + QUARTERS  # where the scalars after p and emax start
LEARN = struct.Struct("<" + "".join(f"{n}{code}" for _, code, n, _ in _SPEC))
FIELDS = tuple(name for name, *_ in _SPEC)
LEARN_V1 = struct.Struct("<" + "".join(f"{n}{code}" for _, code, n, _ in _SPEC_V1))
FIELDS_V1 = tuple(name for name, *_ in _SPEC_V1)
# Where each field of version 1 starts in LEARN_V1.unpack's values.
AT_V1 = {name: sum(n for _, _, n, _ in _SPEC_V1[:i]) for i, (name, *_) in enumerate(_SPEC_V1)}


def from_v1(data: bytes) -> bytes:
    """Baselines packed by PACKED_VERSION 1, packed as now: the same values, days
    saturating at 255, night_day modulo 256, seen_bits fresh."""
    v = LEARN_V1.unpack(data)
    at = AT_V1
    v = (*v[:at["days"]], min(v[at["days"]], 255), *v[at["days"] + 1:at["night_day"]],
         v[at["night_day"]] % 256, *v[at["night_day"] + 1:], 0)
    return LEARN.pack(*v)


def _span(first: str, last: str) -> tuple[int, int]:
    """Byte offsets in LEARN from field ``first`` to the end of field ``last``."""
    names = [name for name, *_ in _SPEC]
    size = [struct.calcsize(f"<{n}{code}") for _, code, n, _ in _SPEC]
    return sum(size[:names.index(first)]), sum(size[:names.index(last) + 1])


# The last readings of the temperature sensors (temp_dev … temp_flags): read by the
# temperature rule alone, and by its timer only while a room is hot or cold.
TEMP_SPAN = _span("temp_dev", "temp_flags")
JUMPED, DISPUTED, NEAR = 1, 2, 16  # temp_flags (bits 2-3: temperature.JUDGED_SHIFT)


def sec(ms: int) -> int:
    """``ms`` down to its second (what Learned keeps)."""
    return ms - ms % 1000


def sec_up(ms: int) -> int:
    """``ms`` up to the next whole second."""
    return -(-ms // 1000) * 1000


# --- local time ---------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def _offset(tz: str, hour: int) -> int:
    """The zone's UTC offset in ms during UTC hour ``hour`` (cached: offsets change at
    most twice a year, and on the hour)."""
    off = datetime.fromtimestamp(hour * 3600, UTC).astimezone(zone(tz)).utcoffset()
    return 0 if off is None else int(off.total_seconds() * 1000)


def local_ms(ms: int, tz: str) -> int:
    return ms + _offset(tz, ms // HOUR_MS)


def half(ms: int, tz: str) -> int:
    """The absolute local half hour of ``ms`` (bin of the day: ``half % 48``)."""
    return local_ms(ms, tz) // HALF_MS


def local_day(ms: int, tz: str) -> int:
    return local_ms(ms, tz) // DAY_MS


def _half_start(h: int, tz: str) -> int:
    """ms UTC at which absolute local half hour ``h`` starts."""
    guess = h * HALF_MS
    return guess - _offset(tz, (guess - _offset(tz, guess // HOUR_MS)) // HOUR_MS)


# --- learning -------------------------------------------------------------------------------


def prior(learned: Learned, tz: str, sleep_start: str, sleep_end: str) -> None:
    """A new home's idea of when people are up: its sleep window (Thresholds)."""
    s, e = hhmm(sleep_start) // 30, hhmm(sleep_end) // 30
    for b in range(BINS):
        asleep = (s <= b < e) if s < e else (b >= s or b < e)
        learned.p[b] = round((P_ASLEEP if asleep else P_AWAKE) * 255)
    learned.flags |= INIT


def evidence(learned: Learned, tz: str, since: int, now: int) -> float:
    """The evidence of a quiet spell from ``since`` to ``now`` (see module docstring);
    the half hour in which the spell began does not count (activity was seen in it)."""
    a, b = half(since, tz), half(now, tz)
    if b <= a:
        return 0.0
    p = learned.p
    total = 0.0
    for k in range(a + 1, min(b, a + 1 + MAX_SPELL_BINS)):
        total += EV[p[k % BINS]]
    if b - a <= MAX_SPELL_BINS:
        total += EV[p[b % BINS]] * ((local_ms(now, tz) % HALF_MS) / HALF_MS)
    return total * (0.3 if learned.flags & DOOR_LAST else 1.0)


def crossing(learned: Learned, tz: str, since: int, theta: float) -> int | None:
    """When the spell that began at ``since`` reaches evidence ``theta`` (None: not
    within 24 h; the fixed inactivity tiers take it from there)."""
    a = half(since, tz)
    p = learned.p
    scale = 0.3 if learned.flags & DOOR_LAST else 1.0
    total = 0.0
    for k in range(a + 1, a + 1 + MAX_SPELL_BINS):
        ev = EV[p[k % BINS]] * scale
        if total + ev >= theta:
            start = _half_start(k, tz)
            return sec_up(max(since + 1, start + math.ceil((theta - total) / ev * HALF_MS)))
        total += ev
    return None


def quarter(since: int, tz: str) -> int:
    """The quarter of the local day (0: 00-06, 1: 06-12, 2: 12-18, 3: 18-24)."""
    return half(since, tz) % BINS // (BINS // QUARTERS)


def threshold(learned: Learned, since: int, tz: str) -> float:
    """The evidence at which a quiet spell that began at ``since`` becomes a concern for
    this person."""
    theta = max(THETA_FLOOR, K_USUAL * learned.emax[quarter(since, tz)] / 100)
    if learned.days < LEARN_DAYS:
        theta = max(theta, THETA_NEW)
    return theta * EAGER_STEP ** -learned.eager


def trickle_threshold(learned: Learned) -> float:
    """The evidence at which the running trickle (``carry`` > 0) becomes a concern: as
    ``threshold``, against the usual largest of this person's ordinary runs."""
    theta = max(THETA_FLOOR, K_USUAL * learned.tmax / 100)
    if learned.days < LEARN_DAYS:
        theta = max(theta, THETA_NEW)
    return theta * EAGER_STEP ** -learned.eager


def quick_crossing(learned: Learned, tz: str, since: int) -> tuple[int | None, bool]:
    """(when, trickle): when the spell that began at ``since`` becomes a concern, either
    as a quiet spell on its own or, while a trickle runs, with the evidence it carries;
    ``trickle`` says which came first."""
    t = crossing(learned, tz, since, threshold(learned, since, tz))
    if not learned.carry:
        return t, False
    # At least some stillness of its own: never told at the very movement
    rest = max(REST_MIN, trickle_threshold(learned) - learned.carry / 100)
    u = crossing(learned, tz, since, rest)
    if u is not None and (t is None or u < t):
        return u, True
    return t, False


THETA_FLOOR = 14.0  # ≈ 2.5 h of stillness at a time this person is almost always up
THETA_NEW = 20.0  # a new home: ≈ 8 h of daytime quiet on the prior
K_USUAL = 2.0  # a concern is twice the largest evidence of their ordinary spells
EAGER_STEP = 1.25  # each step of recorded outcomes moves the threshold by a quarter


def lower_bound(learned: Learned, since: int, tz: str) -> int:
    """No earlier than this can a spell from ``since`` reach the threshold (cheap)."""
    theta = threshold(learned, since, tz)
    if learned.carry:
        theta = max(REST_MIN, min(theta, trickle_threshold(learned) - learned.carry / 100))
    return sec_up(since + math.ceil(theta / EV_MAX * HALF_MS))


def on_activity(learned: Learned, tz: str, at: int, *, learn: bool) -> None:
    """Activity at ``at`` (newer than the last): credit its half hour, and learn the
    quiet spell it ends if ``learn`` (an ordinary spell, see module docstring).

    A spell that reached the concern and then ended with the person moving again is
    learned only up to the threshold it crossed: a long nap told once is not told every
    afternoon, while a real incident (ended by the visit it caused) cannot teach the
    home that hours on the floor are normal; each such spell at most doubles the
    threshold, and the maxima decay."""
    b = half(at, tz)
    mark = learned.mark
    if mark and b <= mark:
        return
    p = learned.p
    ordinary = mark and learn and b - mark <= MAX_SPELL_BINS
    e = 0.0
    if ordinary:
        k = quarter(learned.spell_ms, tz)
        e = evidence(learned, tz, learned.spell_ms, at)
        if learned.flags & INCIDENT:
            e = min(e, threshold(learned, learned.spell_ms, tz))
            if learned.carry and not learned.flags & DOOR_LAST:
                # A trickle told: its run is learned up to the threshold it crossed,
                # like a spell (at most doubling it), or a run that proves ordinary
                # (a day out in a home without a door sensor) is told again and again.
                run = min(learned.carry / 100 + e, trickle_threshold(learned))
                learned.tmax = min(max(learned.tmax, round(run * 100)), 65_535)
        else:
            for j in range(mark + 1, b):
                p[j % BINS] = round(p[j % BINS] * (1 - ALPHA))
        if not learned.flags & DOOR_LAST:
            # (a spell spent out is not a quiet spell at home: its hours teach ``p``
            # that this person is often out then, and nothing more)
            learned.emax[k] = min(max(learned.emax[k], round(e * 100)), 65_535)
    _carry(learned, e, b, keep=bool(ordinary and not learned.flags
                                            & (INCIDENT | DOOR_LAST)))
    i = b % BINS
    p[i] = round(p[i] + (255 - p[i]) * ALPHA)
    if mark:
        learned.days = min(learned.days + b // BINS - mark // BINS, 255)  # (only < 7 matters)
    decay_to(learned, b // BINS)
    learned.mark = b


def _carry(learned: Learned, e: float, b: int, *, keep: bool) -> None:
    """The trickle: a collapsed person may still move a little, and each brief movement
    would end a quiet spell and start the next from nothing. So the evidence of a spell
    is carried over the movement that ends it, less what an active half hour says
    against an incident: ``PEN`` (the log of how much likelier this person is to be
    seen in this half hour when all is well than when only a trickle is left, at least
    ``PEN_MIN``). Ordinary days drive it back to nothing within a half hour or two of
    being up and about; hours of brief movements between long stillness build it up.
    The largest run of ordinary days is learned (``tmax``), like ``emax``. Only
    ordinary spells carry (not an absence, time away, lost sensors or a spell told as
    a concern: the worker is on it)."""
    total = min(round((learned.carry / 100 + e) * 100), 65_535)
    if learned.carry and keep:
        learned.peak = max(learned.peak, total)
    carry = max(0, total - round(PEN[learned.p[b % BINS]] * 100)) if keep else 0
    if carry and not learned.carry:
        learned.run_ms, learned.peak = learned.spell_ms, total
    elif not carry:
        if learned.carry and keep:
            # An ordinary run ended (learned once over: a run still going may be the
            # incident itself).
            learned.tmax = max(learned.tmax, learned.peak)
        learned.run_ms = learned.peak = 0
    learned.carry = carry


def decay_to(learned: Learned, day: int) -> None:
    """Let the usual maxima decay for each local day up to ``day``: what is not seen
    again is slowly forgotten."""
    if learned.day and day > learned.day:
        f = DECAY ** min(day - learned.day, 30)
        learned.emax = [int(e * f) for e in learned.emax]
        learned.tmax = int(learned.tmax * f)
        learned.plug_gap = int(learned.plug_gap * f)
        learned.door_gap = int(learned.door_gap * f)
    learned.day = max(learned.day, day)


def learn_gap(learned: Learned, tz: str, which: str, gap_ms: int, at: int) -> None:
    """Learn an ordinary gap of ``gap_ms`` ending at ``at`` into the usual longest
    ``which`` ("plug_gap" or "door_gap", minutes)."""
    decay_to(learned, local_day(at, tz))
    setattr(learned, which, min(max(getattr(learned, which), gap_ms // 60_000), 65_535))
