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
from dolbom.alerts.rules.base import BIT, NORMAL, WELFARE_PRIORITY, Action, Clear, Raise, Work
from dolbom.alerts.rules.baseline import (
    COMBINED,
    DOOR_LAST,
    DOOR_WATCHED,
    LEARN_DAYS,
    POWER_WATCHED,
)

RULE = Rule.WELFARE_CONCERN
BOTH = POWER_WATCHED | DOOR_WATCHED


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
