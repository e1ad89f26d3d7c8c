"""What the silence rules share: inactivity, no door use, no power use, out of bed.

Each of them matures at a computed time when *nothing* has happened, and nothing
happening is only evidence if the sensors that would have seen it are alive
("silence is not safety", DESIGN.md §5). So at maturity a rule:

* is **suppressed** (recorded, not notified; once per episode) when the home is
  away or in hospital, or when every sensor that could see the condition is lost
  or there is none: the technical alert comes instead of the welfare verdict;
* **raises** when one of those sensors has been heard at or after the maturity
  time: it was alive while the condition held;
* otherwise is **pending** until one of them is heard (a heartbeat, at most one
  promised interval away) and then raises with the maturity time, or until all of
  them are declared lost and then is suppressed. A sensor that died a minute
  before the verdict therefore yields a device-lost alert, not an inactivity alert.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import Protocol

from dolbom.alerts.model import Rule
from dolbom.alerts.rules.actions import Action, Suppressed
from dolbom.alerts.rules.base import BIT, NORMAL, REC, HomeConfig
from dolbom.alerts.rules.state import Work, mode_reason


class Verdict(enum.Enum):
    RAISE = "raise"
    PENDING = "pending"
    SUPPRESS = "suppress"


class TimedRule(Protocol):
    """The module interface of a timed rule: the silence rules (``inactivity``, ``quiet``,
    ``door``, ``bed``, ``power``) and ``temperature`` between readings."""

    RULE: Rule
    LOST_REASON: str
    NONE_REASON: str

    def mask(self, cfg: HomeConfig) -> int:
        """The devices that can see this rule's condition."""
        ...

    def crossing(self, cfg: HomeConfig, w: Work) -> int | None:
        """When the running episode matures (or matured); None if no episode is running."""
        ...

    def due(self, cfg: HomeConfig, w: Work) -> int | None:
        """When ``fire`` must be called next; None if nothing is armed."""
        ...

    def fire(self, cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
        """Called at ``due``."""
        ...

    def confirm(self, cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
        """A sensor was heard after the pending maturity: raise (or suppress if away)."""
        ...

    def restart(self, cfg: HomeConfig, w: Work, at: int) -> None:
        """Start a new episode at ``at`` (sensors back, or the home back to normal mode)."""
        ...


def heard_since(w: Work, mask: int, at: int) -> bool:
    """Whether a device of ``mask`` has been heard at or after ``at``."""
    return any(mask >> i & 1 and rec[0] >= at for i, rec in enumerate(REC.iter_unpack(w.devs)))


def judge(cfg: HomeConfig, w: Work, at: int, mask: int,
          lost_reason: str, none_reason: str) -> tuple[Verdict, str]:
    """The verdict on a silence rule that matures at ``at`` (see the module docstring)."""
    if w.mode != NORMAL:
        return Verdict.SUPPRESS, mode_reason(w)
    if not mask:
        return Verdict.SUPPRESS, none_reason
    if not mask & ~w.lost:
        return Verdict.SUPPRESS, lost_reason
    if heard_since(w, mask, at):
        return Verdict.RAISE, ""
    return Verdict.PENDING, ""


def suppress(w: Work, rule: Rule, at: int, reason: str, acts: list[Action]) -> None:
    """Record that ``rule`` would have fired; once per episode (the ``quiet`` bit)."""
    b = BIT[rule]
    if not w.quiet & b:
        acts.append(Suppressed(rule, at, reason))
    w.quiet |= b
    w.pending &= ~b


def handled(w: Work, rule: Rule) -> bool:
    """Raised, pending or suppressed: this episode has had its verdict."""
    return bool((w.raised | w.pending | w.quiet) & BIT[rule])


RaiseFn = Callable[[HomeConfig, Work, list[Action]], None]


def decide(cfg: HomeConfig, w: Work, at: int, rule: Rule, mask: int,
           reasons: tuple[str, str], raise_: RaiseFn, acts: list[Action]) -> None:
    """Apply the verdict on ``rule`` maturing at ``at``; ``reasons`` = (lost, none)."""
    verdict, why = judge(cfg, w, at, mask, *reasons)
    if verdict is Verdict.SUPPRESS:
        suppress(w, rule, at, why, acts)
    elif verdict is Verdict.PENDING:
        w.pending |= BIT[rule]
    else:
        raise_(cfg, w, acts)


def confirmed(cfg: HomeConfig, w: Work, at: int, rule: Rule, raise_: RaiseFn,
              acts: list[Action]) -> None:
    """The pending ``rule`` (matured at ``at``) is confirmed by a live sensor."""
    if w.mode != NORMAL:
        suppress(w, rule, at, mode_reason(w), acts)
    else:
        raise_(cfg, w, acts)
