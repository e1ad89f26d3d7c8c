"""A motion sensor that is alive but sees nothing (DESIGN.md §5, "silence is not safety"
per sensor): its heartbeats say it is there, but while the door, the bed or the plug
show that someone is living in the home, it has not seen a movement for hours.

That is a technical matter (the sensor is covered, turned to the wall, broken), never
an inactivity verdict: when a silence verdict (inactivity, the quiet concern) comes
due and the motion sensors look blind, ``SENSOR_BLIND`` is raised instead (medium:
the care worker must know that nobody is watching) and the verdict is set aside. It
clears at the next movement.

"Look blind": two or more signs of life that are not motion, at least ``SPAN_MS``
apart, with no movement seen since before the first of them. A person coming home
after a long day opens the door and is seen moving a minute later; a blind sensor is
not.

One sign can be enough, in a home whose own days show it (``alone``): someone came in
through the door, or switched a plug on, ``ALONE_MS`` or more ago, as the last sign of
life that was not a movement, nobody has been seen since, and in this home such a
sign is nearly always followed by a movement within ``WITH_MS`` (``seen_bits``: six of
its last seven, learned from its own signs; a sensor that does not cover the kitchen,
or a plug that switches itself on, never gets there). It can also
be a fall just inside the door, out of the sensor's sight, so it is told in those
words ("the sensor may not see, or the resident may be unable to move") and, unlike
the two signs, it sets aside only the early verdicts: the quiet concern and the first
inactivity tier. The 24 h and 36 h tiers are told whatever one sign says.
"""

from __future__ import annotations

from dolbom.alerts.model import Priority, Rule
from dolbom.alerts.rules.actions import Action, Clear, Raise
from dolbom.alerts.rules.base import BIT, HOUR_MS, MINUTE_MS, HomeConfig
from dolbom.alerts.rules.baseline import DOOR_LAST, sec
from dolbom.alerts.rules.state import Work

RULE = Rule.SENSOR_BLIND
SPAN_MS = 6 * HOUR_MS
REASON = "motion sensors see nothing while other sensors show life"
WITH_MS = 10 * MINUTE_MS  # a sign followed by a movement this soon was seen
ALONE_MS = HOUR_MS  # one sign, unseen this long: the sensor may be blind
LONE = 0x80  # seen_bits: the last sign of life that is not motion (life_ms) is one
LAST = 0x7F  # seen_bits: the last seven signs, 1 for each seen
WITH_MIN = 6  # of the last seven, seen for one sign to count (and seven counted before)


def suspect(cfg: HomeConfig, w: Work) -> bool:
    L = w.learn
    alive = cfg.motion & ~w.lost
    return bool(alive) and L.life_first_ms > L.motion_ms and (
        L.life_ms - L.life_first_ms >= SPAN_MS)


def alone(cfg: HomeConfig, w: Work, at: int) -> bool:
    """One sign (someone came in, a plug switched on) ``ALONE_MS`` ago, nobody seen
    since, in a home where such a sign is nearly always seen (module docstring)."""
    L = w.learn
    return (bool(cfg.motion & ~w.lost) and bool(L.seen_bits & LONE)
            and L.life_ms > L.motion_ms and at - L.life_ms >= ALONE_MS
            and (L.seen_bits & LAST).bit_count() >= WITH_MIN and not L.flags & DOOR_LAST)


def report(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    """Raise SENSOR_BLIND once (until the next movement clears it)."""
    if w.raised & BIT[RULE]:
        return
    L = w.learn
    hours = (at - L.motion_ms) / HOUR_MS
    extra: dict[str, float] = {}
    if suspect(cfg, w):
        why = (f"the motion sensors have seen nothing for {hours:.0f} h while the door, "
               "bed or plug showed someone at home")
        why_ko = (f"움직임 감지기가 {hours:.0f}시간 동안 아무것도 감지하지 못함 "
                  "(문·침대·전력 사용은 있음)")
    else:
        since = (at - L.life_ms) / HOUR_MS
        extra["unseen_h"] = round(since, 1)
        why = (f"nobody seen moving for {since:.1f} h since the door or a plug was used, "
               "though here someone is nearly always seen within minutes: the motion "
               "sensor may not see, or the resident may be unable to move; call")
        why_ko = (f"문·전력 사용 뒤 {since:.1f}시간 동안 움직임이 보이지 않음 (이 집에서는 "
                  "보통 몇 분 안에 보임): 감지기 이상이거나 거주자가 움직이지 못할 수 있음. "
                  "연락 필요")
    acts.append(Raise(RULE, Priority.MEDIUM, at, detail={
        "reasons": [why], "reasons_ko": [why_ko], "last_motion_ms": L.motion_ms, **extra}))
    w.raised |= BIT[RULE]


def on_motion(w: Work, at: int, acts: list[Action], learn: bool) -> None:
    """A movement seen by a motion sensor; ``learn``: the home is in an ordinary state
    (normal mode, its motion sensors all heard), so a sign it ends is counted."""
    L = w.learn
    at = sec(at)
    if L.seen_bits & LONE and at >= L.life_ms:
        seen = L.seen_bits & LAST
        if learn and not w.raised & BIT[RULE]:
            seen = (seen << 1 | (at - L.life_ms <= WITH_MS)) & LAST
        L.seen_bits = seen  # (LONE cleared: a movement now comes before any sign)
    L.motion_ms = max(L.motion_ms, at)
    L.life_first_ms = 0
    if w.raised & BIT[RULE]:
        acts.append(Clear(RULE, at, "motion seen again"))
        w.raised &= ~BIT[RULE]


def on_life(w: Work, at: int, sign: bool | None = False) -> None:
    """A sign of life that is not motion (door, bed, a plug switched on). ``sign``: it is
    someone coming in through the door or switching a plug on (None: the rest of the
    same passage through the door, as its first event decided); it counts towards
    ``alone`` when the home is not thought empty (a plug that switches on then is not
    a person)."""
    L = w.learn
    at = sec(at)
    if not L.motion_ms:
        L.motion_ms = at  # a state from before this was kept: start counting now
    if at > L.motion_ms:
        if not L.life_first_ms:
            L.life_first_ms = at
        if at >= L.life_ms and sign is not None:
            if sign and not L.flags & DOOR_LAST:
                L.seen_bits |= LONE
            else:
                L.seen_bits &= ~LONE
        L.life_ms = max(L.life_ms, at)
