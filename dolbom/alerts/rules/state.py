"""A home's rule state: ``HomeState``, one packed ``bytes`` value, and ``Work``, its
unpacked form that the rules read and change for the length of one engine call.

``HomeState`` holds the per-device records (``REC``, in the order of ``HomeConfig.ids``),
then the home's baselines (``LEARN``) and its scalars (``HOME``), and ``tag``, the
configuration's own, which remembers which devices (and thresholds) the state was built
for (DESIGN.md §7: ≤ 1 KB of service state per home).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, fields

from dolbom.alerts.model import Rule
from dolbom.alerts.rules.base import BIT, I64, MODES, REC, TEMP_AT, HomeConfig, lost_deadline
from dolbom.alerts.rules.baseline import LEARN, Learned


@dataclass(slots=True)
class Work:
    """The rule state of one home, unpacked: a private scratch copy that the rules
    change during one engine call, packed again into a ``HomeState`` at its end.
    (A frozen object per change would cost more than the rules themselves on the
    message path: 30,000 messages a second.) The fields after ``devs`` are ``HOME``,
    in its order."""

    tag: bytes  # HomeConfig.tag this state was built for
    devs: bytearray  # REC per device
    # The home's baselines (baseline.py) as stored: unpacked on first use (``learn``),
    # since most messages (heartbeats, readings of an idle plug) never need them.
    learned_raw: bytes | memoryview
    battery_low: int  # bitmask over devices
    hot: int  # bitmask over devices: in a hot condition (hysteresis, see temperature.py)
    cold: int
    activity_ms: int  # last activity, or when the inactivity clock (re)started
    inact_tier: int  # inactivity tiers handled in this silence (0-3)
    inact_at: int  # when tier inact_tier + 1 matures; a lower bound until inact_exact
    inact_exact: bool
    door_ms: int  # last door use, or when the no-door-use clock (re)started
    power_ms: int  # last plug use, or when the no-power-use clock (re)started
    bed_out_ms: int  # out of bed at night since (0: not)
    heat_raised_ms: int  # last Raise(HEAT), for at most one per temp_repeat_h (0: never)
    cold_raised_ms: int
    raised: int  # BIT: alerts raised and not cleared (the ones this engine auto-clears)
    quiet: int  # BIT: welfare rules suppressed in the current episode
    # The last five fields (HOT) are what the heartbeat path reads without unpacking.
    mode: int  # index in MODES of the mode last applied (a return to normal restarts clocks)
    pending: int  # BIT: a silence rule matured; waits for a sensor to prove it is alive
    lost: int  # bitmask over devices: declared lost, not heard since
    timed_ms: int  # when the next silence rule matures (0: none), as of the last change
    due_ms: int  # when the next timer of any rule fires (0: none), as of the last change
    _learn: Learned | None = None  # learned_raw, unpacked

    @property
    def learn(self) -> Learned:
        """The home's baselines (unpacked now if they were not)."""
        L = self._learn
        if L is None:
            L = self._learn = Learned.unpack(self.learned_raw)
        return L

    def learned_bytes(self) -> bytes:
        """The baselines packed (as stored, when nothing unpacked them)."""
        L = self._learn
        return bytes(self.learned_raw) if L is None else L.pack()

    def rec(self, i: int) -> tuple[int, int, int]:
        """(seen_ms, next_s, temp_ms) of device ``i``."""
        seen, next_s, temp, _ = REC.unpack_from(self.devs, i * REC.size)
        return seen, next_s, temp

    def set_heard(self, cfg: HomeConfig, i: int, seen: int, next_s: int) -> None:
        """Device ``i``'s last message and promised interval (its ``lost`` bit already set
        as it should be): re-arms its lost deadline."""
        o = i * REC.size
        temp = I64.unpack_from(self.devs, o + TEMP_AT)[0]
        REC.pack_into(self.devs, o, seen, next_s, temp,
                      lost_deadline(cfg, i, seen, next_s, self.lost))

    def set_temp(self, i: int, temp: int) -> None:
        I64.pack_into(self.devs, i * REC.size + TEMP_AT, temp)

    def seen(self, i: int) -> int:
        seen: int = I64.unpack_from(self.devs, i * REC.size)[0]
        return seen

    def clear_bits(self, rule: Rule) -> None:
        """Forget ``rule``'s episode (raised, pending and quiet)."""
        keep = ~BIT[rule]
        self.raised &= keep
        self.pending &= keep
        self.quiet &= keep

    def pack_home(self) -> bytes:
        return HOME.pack(
            self.battery_low, self.hot, self.cold, self.activity_ms, self.inact_tier,
            self.inact_at, self.inact_exact, self.door_ms, self.power_ms, self.bed_out_ms,
            self.heat_raised_ms, self.cold_raised_ms, self.raised, self.quiet, self.mode,
            self.pending, self.lost, self.timed_ms, self.due_ms)

    def freeze(self, learned: bytes | None = None) -> HomeState:
        """Pack into a HomeState (``learned``: ``learned_bytes()``, if already at hand)."""
        return HomeState(self.tag, b"".join((
            self.devs, self.learned_bytes() if learned is None else learned,
            self.pack_home())))

    @staticmethod
    def thaw(st: HomeState) -> Work:
        data = st.data
        n = len(data) - TAIL
        view = memoryview(data)
        return Work(st.tag, bytearray(view[:n]), view[n:n + LEARN.size],
                    *HOME.unpack_from(data, n + LEARN.size))


# The home's scalars of Work, in order (masks over devices are uint64: ≤ 64 devices).
HOME = struct.Struct("<3QqBq?5q2HBHQ2q")
# Its last fields: mode, pending, lost, timed_ms, due_ms (the heartbeat path reads these).
HOT = struct.Struct("<BHQ2q")
TIMERS_SIZE = 16  # timed_ms and due_ms, the last two fields: what a heartbeat can change
HOME_FIELDS = tuple(f.name for f in fields(Work))[3:-1]  # after tag, devs and learned_raw
TAIL = LEARN.size + HOME.size  # after the device records


@dataclass(frozen=True, slots=True, repr=False)
class HomeState:
    """Rule state of one home, packed into one ``bytes`` (≈ 0.3 KB for six devices, with
    the tag it shares with its ``HomeConfig``; ``Work`` is the unpacked form and names
    every field)."""

    tag: bytes  # HomeConfig.tag the state was built for (that very object, when it is)
    data: bytes  # REC per device, in HomeConfig.ids order, then LEARN, then HOME

    @property
    def devs(self) -> bytes:
        """The device records."""
        return self.data[:-TAIL]

    @property
    def learned(self) -> bytes:
        """The home's baselines (LEARN)."""
        return self.data[-TAIL:-HOME.size]

    @property
    def home(self) -> bytes:
        """The home's scalars (HOME)."""
        return self.data[-HOME.size:]

    def view(self) -> Work:
        """An unpacked copy, to read (changing it does not change this state)."""
        return Work.thaw(self)

    def __repr__(self) -> str:
        w = self.view()
        fields = ", ".join(f"{n}={getattr(w, n)!r}" for n in HOME_FIELDS)
        recs = list(REC.iter_unpack(self.devs))
        return f"HomeState({fields}, devs={recs})"




def mode_reason(w: Work) -> str:
    return f"home is in {MODES[w.mode]} mode"
