"""Door rules (DESIGN.md §5): no door use for ``no_door_days`` (homes with a door
sensor only), and night exit for residents flagged for wandering.

No door use is a silence rule (``silence.py``); any door event ends it. Night exit is
immediate: a live door "open" inside the night window (local time) raises at once.
A replayed (``hist``) door event is history, not a night exit now.
"""

from __future__ import annotations

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import silence
from dolbom.alerts.rules.base import (
    BIT,
    DAY_MS,
    NORMAL,
    WELFARE_PRIORITY,
    Action,
    ActivityObs,
    Clear,
    HomeConfig,
    Raise,
    Work,
    mode_reason,
)
from dolbom.alerts.rules.clock import in_window

RULE = Rule.NO_DOOR_USE
LOST_REASON = "door sensor lost"
NONE_REASON = "no door sensor"


def mask(cfg: HomeConfig) -> int:
    return cfg.doors


def _matured(cfg: HomeConfig, w: Work) -> int:
    return w.door_ms + round(cfg.thresholds.no_door_days * DAY_MS)


def crossing(cfg: HomeConfig, w: Work) -> int | None:
    return _matured(cfg, w) if cfg.doors else None


def due(cfg: HomeConfig, w: Work) -> int | None:
    return None if silence.handled(w, RULE) else crossing(cfg, w)


def fire(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    silence.decide(cfg, w, at, RULE, cfg.doors, (LOST_REASON, NONE_REASON), _raise, acts)


def confirm(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    silence.confirmed(cfg, w, _matured(cfg, w), RULE, _raise, acts)


def _raise(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    acts.append(Raise(RULE, WELFARE_PRIORITY, _matured(cfg, w), detail={
        "days": cfg.thresholds.no_door_days, "since_ms": w.door_ms}))
    w.raised |= BIT[RULE]
    w.pending &= ~BIT[RULE]


def restart(cfg: HomeConfig, w: Work, at: int) -> None:
    if w.raised & BIT[RULE]:
        return  # the open alert waits for a door event
    w.clear_bits(RULE)
    w.door_ms = max(w.door_ms, at)


def on_door(cfg: HomeConfig, w: Work, obs: ActivityObs, acts: list[Action]) -> None:
    """A door event (open or closed) from any device of the home."""
    at = obs.at_ms
    if at > w.door_ms:
        if w.raised & BIT[RULE]:
            acts.append(Clear(RULE, at, "door used"))
        w.clear_bits(RULE)
        w.door_ms = at
    th = cfg.thresholds
    if (th.wandering and not obs.hist and obs.val == "open"
            and in_window(at, th.timezone, th.night_start, th.night_end)):
        if w.mode != NORMAL:
            silence.suppress(w, Rule.NIGHT_EXIT, at, mode_reason(w), acts)
        else:
            acts.append(Raise(Rule.NIGHT_EXIT, WELFARE_PRIORITY, at, device=obs.device,
                              detail={"device": obs.device}))
