"""No power use (DESIGN.md §5): in a home with a smart plug, no reading of
``power_w`` above ``power_on_w`` for ``no_power_h`` (the kettle, the rice cooker and
the TV are signs of an ordinary day). A silence rule (``silence.py``).
"""

from __future__ import annotations

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import silence
from dolbom.alerts.rules.base import (
    BIT,
    HOUR_MS,
    WELFARE_PRIORITY,
    Action,
    Clear,
    HomeConfig,
    Raise,
    Work,
)

RULE = Rule.NO_POWER_USE
LOST_REASON = "plug lost"
NONE_REASON = "no plug"


def mask(cfg: HomeConfig) -> int:
    return cfg.plugs


def _matured(cfg: HomeConfig, w: Work) -> int:
    return w.power_ms + round(cfg.thresholds.no_power_h * HOUR_MS)


def crossing(cfg: HomeConfig, w: Work) -> int | None:
    return _matured(cfg, w) if cfg.plugs else None


def due(cfg: HomeConfig, w: Work) -> int | None:
    return None if silence.handled(w, RULE) else crossing(cfg, w)


def fire(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    silence.decide(cfg, w, at, RULE, cfg.plugs, (LOST_REASON, NONE_REASON), _raise, acts)


def confirm(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    silence.confirmed(cfg, w, _matured(cfg, w), RULE, _raise, acts)


def _raise(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    acts.append(Raise(RULE, WELFARE_PRIORITY, _matured(cfg, w), detail={
        "hours": cfg.thresholds.no_power_h, "since_ms": w.power_ms}))
    w.raised |= BIT[RULE]
    w.pending &= ~BIT[RULE]


def restart(cfg: HomeConfig, w: Work, at: int) -> None:
    if w.raised & BIT[RULE]:
        return  # the open alert waits for power use
    w.clear_bits(RULE)
    w.power_ms = max(w.power_ms, at)


def on_power(cfg: HomeConfig, w: Work, watts: float, at: int, acts: list[Action]) -> None:
    """A ``power_w`` reading at ``at`` (live, or replayed backlog newer than what we had)."""
    if watts <= cfg.thresholds.power_on_w or at <= w.power_ms:
        return
    if w.raised & BIT[RULE]:
        acts.append(Clear(RULE, at, "power used"))
    w.clear_bits(RULE)
    w.power_ms = at
