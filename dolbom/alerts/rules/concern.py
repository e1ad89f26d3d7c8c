"""One welfare concern per home from weak signals together (DESIGN.md §5).

A plug unused for longer than usual, or a door, is a weak signal: alone it goes to the
watch list (``power.py``, ``door.py``). Both at once, in a home whose habits are known,
say more than either (no cooking and no going out: someone withdrawing, or unwell):
that is told as the home's ``welfare_concern``, with both reasons. It is the same one
concern per home as the quiet concern (``quiet.py``): whichever comes first opens it,
and the other counts on it. It resolves when the plug or the door is used again (not on
mere movement: a person moving about but neither cooking nor going out is the point).
"""

from __future__ import annotations

from dolbom.alerts.model import Rule
from dolbom.alerts.rules.actions import Action, Clear, Raise, Watch
from dolbom.alerts.rules.base import BIT, NORMAL, WELFARE_PRIORITY
from dolbom.alerts.rules.baseline import (
    COMBINED,
    DOOR_LAST,
    DOOR_WATCHED,
    LEARN_DAYS,
    POWER_WATCHED,
)
from dolbom.alerts.rules.state import Work

RULE = Rule.WELFARE_CONCERN
BOTH = POWER_WATCHED | DOOR_WATCHED


def watch_gap(w: Work, rule: Rule, flag: int, at: int, why: tuple[str, str],
              other: tuple[str, str], acts: list[Action]) -> None:
    """A weak signal's gap (the plug's or the door's ``rule``) has its verdict: the watch
    list once per gap (``flag`` marks it), with ``why`` (en, ko); and, with ``other``
    (the other signal, en, ko), the home's concern if the other one is watched too."""
    b = BIT[rule]
    w.pending &= ~b
    w.quiet |= b  # this gap has had its verdict
    w.learn.flags |= flag
    acts.append(Watch(rule, at, (why[0],), reasons_ko=(why[1],)))
    on_watched(w, at, [why[0], other[0]], [why[1], other[1]], acts)


def on_watched(w: Work, at: int, reasons: list[str], reasons_ko: list[str],
               acts: list[Action]) -> None:
    """A weak signal was just watched (its flag set, its reason given): if the other is
    watched too, tell the concern with both reasons."""
    L = w.learn
    if (L.flags & BOTH != BOTH or L.days < LEARN_DAYS or w.mode != NORMAL
            or w.raised & BIT[RULE] or L.flags & DOOR_LAST):
        # Not while the home is empty (gone out through the door, not seen since): an
        # absent person uses neither, and the absence is on the watch list already.
        return
    acts.append(Raise(RULE, WELFARE_PRIORITY, at, detail={
        "signal": "combined", "reasons": reasons, "reasons_ko": reasons_ko}))
    w.raised |= BIT[RULE]
    L.flags |= COMBINED


def on_used(w: Work, at: int, what: str, acts: list[Action]) -> None:
    """The plug or the door was used: a concern opened for the two together resolves."""
    L = w.learn
    if L.flags & COMBINED:
        L.flags &= ~COMBINED
        if w.raised & BIT[RULE]:
            acts.append(Clear(RULE, at, f"{what} used"))
            w.raised &= ~BIT[RULE]
