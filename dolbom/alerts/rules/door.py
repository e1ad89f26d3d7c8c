"""Door rules (DESIGN.md §5): no door use (homes with a door sensor only), and night
exit for residents flagged for wandering.

No door use is a silence rule (``silence.py``) against this person's own habit, like
no power use (``power.py``): past ``no_door_days`` and one and a half times the usual
longest gap (``baseline.door_gap``) it goes to the **watch list**, once per gap. Alone it
is never pushed: some people rarely go out, and a person moving about at home who does
not go out is not in danger for that; with the plug unused too it is the home's welfare
concern (``concern.py``). Any door event ends it.

Night exit is immediate: a live door "open" inside the night window (local time)
raises at once. A replayed (``hist``) door event is history, not a night exit now.
"""

from __future__ import annotations

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import concern, silence
from dolbom.alerts.rules.actions import Action, Clear, Raise
from dolbom.alerts.rules.base import (
    BIT,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    NORMAL,
    WELFARE_PRIORITY,
    HomeConfig,
)
from dolbom.alerts.rules.baseline import DOOR_WATCHED, learn_gap
from dolbom.alerts.rules.clock import in_window
from dolbom.alerts.rules.observations import ActivityObs
from dolbom.alerts.rules.state import Work, mode_reason

RULE = Rule.NO_DOOR_USE
LOST_REASON = "door sensor lost"
NONE_REASON = "no door sensor"
LEARN_MIN_MS = HOUR_MS


def mask(cfg: HomeConfig) -> int:
    return cfg.doors


def limit(cfg: HomeConfig, w: Work) -> int:
    """How long the door may be unused before it is watched, in ms."""
    base = round(cfg.thresholds.no_door_days * DAY_MS)
    return max(base, w.learn.door_gap * MINUTE_MS * 3 // 2)


def _matured(cfg: HomeConfig, w: Work) -> int:
    return w.door_ms + limit(cfg, w)


def crossing(cfg: HomeConfig, w: Work) -> int | None:
    return _matured(cfg, w) if cfg.doors else None


def due(cfg: HomeConfig, w: Work) -> int | None:
    return None if silence.handled(w, RULE) else crossing(cfg, w)


def fire(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    silence.decide(cfg, w, at, RULE, cfg.doors, (LOST_REASON, NONE_REASON), _raise, acts)


def confirm(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    silence.confirmed(cfg, w, _matured(cfg, w), RULE, _raise, acts)


def _raise(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    at = _matured(cfg, w)
    days = (at - w.door_ms) / DAY_MS
    usual_d = w.learn.door_gap / (24 * 60)
    usual = (f"usually at most {usual_d:.1f} days" if w.learn.door_gap >= 60
             else "no usual pattern learned yet")
    usual_ko = f"평소 최장 {usual_d:.1f}일" if w.learn.door_gap >= 60 else "아직 평소 패턴 없음"
    concern.watch_gap(w, RULE, DOOR_WATCHED, at, (
        f"door not used for {days:.1f} days ({usual})", f"문 사용 {days:.1f}일 없음 ({usual_ko})"),
        ("and the plug not used for longer than usual", "전력 사용도 평소보다 오래 없음"), acts)


def restart(cfg: HomeConfig, w: Work, at: int) -> None:
    if w.raised & BIT[RULE]:
        return  # the open alert waits for a door event
    w.clear_bits(RULE)
    w.learn.flags &= ~DOOR_WATCHED
    w.door_ms = max(w.door_ms, at)


def on_door(cfg: HomeConfig, w: Work, obs: ActivityObs, acts: list[Action]) -> None:
    """A door event (open or closed) from any device of the home."""
    at = obs.at_ms
    if at > w.door_ms:
        gap = at - w.door_ms
        concern.on_used(w, at, "door", acts)
        if w.raised & BIT[RULE]:
            acts.append(Clear(RULE, at, "door used"))
        if gap >= LEARN_MIN_MS and w.mode == NORMAL:
            # (a habit that changed is watched once, then learned; see power.py)
            learn_gap(w.learn, cfg.thresholds.timezone, "door_gap", gap, at)
        w.clear_bits(RULE)
        w.learn.flags &= ~DOOR_WATCHED
        w.door_ms = at
    th = cfg.thresholds
    if (th.wandering and not obs.hist and obs.val == "open"
            and in_window(at, th.timezone, th.night_start, th.night_end)):
        if w.mode != NORMAL:
            silence.suppress(w, Rule.NIGHT_EXIT, at, mode_reason(w), acts)
        else:
            acts.append(Raise(Rule.NIGHT_EXIT, WELFARE_PRIORITY, at, device=obs.device,
                              detail={"device": obs.device}))
