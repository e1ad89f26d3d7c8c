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
"""

from __future__ import annotations

from dolbom.alerts.model import Priority, Rule
from dolbom.alerts.rules.actions import Action, Clear, Raise
from dolbom.alerts.rules.base import BIT, HOUR_MS, HomeConfig
from dolbom.alerts.rules.baseline import sec
from dolbom.alerts.rules.state import Work

RULE = Rule.SENSOR_BLIND
SPAN_MS = 6 * HOUR_MS
REASON = "motion sensors see nothing while other sensors show life"


def suspect(cfg: HomeConfig, w: Work) -> bool:
    L = w.learn
    alive = cfg.motion & ~w.lost
    return bool(alive) and L.life_first_ms > L.motion_ms and (
        L.life_ms - L.life_first_ms >= SPAN_MS)


def report(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    """Raise SENSOR_BLIND once (until the next movement clears it)."""
    if w.raised & BIT[RULE]:
        return
    L = w.learn
    hours = (at - L.motion_ms) / HOUR_MS
    acts.append(Raise(RULE, Priority.MEDIUM, at, detail={
        "reasons": [f"the motion sensors have seen nothing for {hours:.0f} h while the "
                    "door, bed or plug showed someone at home"],
        "reasons_ko": [f"움직임 감지기가 {hours:.0f}시간 동안 아무것도 감지하지 못함 "
                       "(문·침대·전력 사용은 있음)"],
        "last_motion_ms": L.motion_ms}))
    w.raised |= BIT[RULE]


def on_motion(w: Work, at: int, acts: list[Action]) -> None:
    L = w.learn
    L.motion_ms = max(L.motion_ms, sec(at))
    L.life_first_ms = 0
    if w.raised & BIT[RULE]:
        acts.append(Clear(RULE, at, "motion seen again"))
        w.raised &= ~BIT[RULE]


def on_life(w: Work, at: int) -> None:
    """A sign of life that is not motion (door, bed, a plug switched on)."""
    L = w.learn
    at = sec(at)
    if not L.motion_ms:
        L.motion_ms = at  # a state from before this was kept: start counting now
    if at > L.motion_ms:
        if not L.life_first_ms:
            L.life_first_ms = at
        L.life_ms = max(L.life_ms, at)
