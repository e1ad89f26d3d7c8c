"""No power use (DESIGN.md §5): in a home with a smart plug, no reading of ``power_w``
above ``power_on_w`` (the kettle, the rice cooker and the TV are signs of an ordinary
day). A silence rule (``silence.py``), in two steps, against this person's own habit:

* past ``no_power_h`` (the default) and past one and a half times the usual longest
  gap this home has shown (``baseline.plug_gap``), the gap goes to the care worker's
  **watch list**: a plug that is rarely used is not news, and a weak signal is not a
  push;
* far beyond both (three times either, at most ``PUSH_MAX_MS``), once the home's
  habits are known (its first week), it is **raised** to the care worker: days
  without cooking or TV are worth a visit.

Gaps that were raised are not learned (an incident is not normal).
"""

from __future__ import annotations

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import blind, concern, silence
from dolbom.alerts.rules.base import (
    BIT,
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    NORMAL,
    WELFARE_PRIORITY,
    Action,
    Clear,
    HomeConfig,
    Raise,
    Watch,
    Work,
)
from dolbom.alerts.rules.baseline import COMBINED, LEARN_DAYS, POWER_WATCHED, learn_gap

RULE = Rule.NO_POWER_USE
LOST_REASON = "plug lost"
NONE_REASON = "no plug"
PUSH_MAX_MS = 7 * DAY_MS
SWITCHED_ON_MS = 10 * MINUTE_MS  # off this long, then on: someone switched it on
LEARN_MIN_MS = HOUR_MS  # shorter gaps say nothing about the usual longest one


def mask(cfg: HomeConfig) -> int:
    return cfg.plugs


def limits(cfg: HomeConfig, w: Work) -> tuple[int, int]:
    """(watch, push): how long the plug may be unused before each step, in ms."""
    base = round(cfg.thresholds.no_power_h * HOUR_MS)
    usual = w.learn.plug_gap * MINUTE_MS
    return max(base, usual * 3 // 2), max(min(max(3 * base, usual * 3), PUSH_MAX_MS), base)


def _matured(cfg: HomeConfig, w: Work) -> int:
    watch, push = limits(cfg, w)
    return w.power_ms + (push if w.learn.flags & POWER_WATCHED else watch)


def crossing(cfg: HomeConfig, w: Work) -> int | None:
    return _matured(cfg, w) if cfg.plugs else None


def due(cfg: HomeConfig, w: Work) -> int | None:
    return None if silence.handled(w, RULE) else crossing(cfg, w)


def fire(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    silence.decide(cfg, w, at, RULE, cfg.plugs, (LOST_REASON, NONE_REASON), _raise, acts)


def confirm(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    silence.confirmed(cfg, w, _matured(cfg, w), RULE, _raise, acts)


def _raise(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    at = _matured(cfg, w)
    hours = (at - w.power_ms) / HOUR_MS
    usual_h = w.learn.plug_gap / 60
    usual = (f"usually at most {usual_h:.0f} h" if usual_h >= 1
             else "no usual pattern learned yet")
    usual_ko = f"평소 최장 {usual_h:.0f}시간" if usual_h >= 1 else "아직 평소 패턴 없음"
    w.pending &= ~BIT[RULE]
    if not w.learn.flags & POWER_WATCHED:
        w.learn.flags |= POWER_WATCHED
        why, why_ko = f"plug not used for {hours:.0f} h ({usual})", (
            f"전력 사용 {hours:.0f}시간 없음 ({usual_ko})")
        acts.append(Watch(RULE, at, (why,), reasons_ko=(why_ko,)))
        concern.on_watched(w, at, [why, "and the door not used for longer than usual"],
                           [why_ko, "문 사용도 평소보다 오래 없음"], acts)
        return
    if w.learn.flags & COMBINED or w.learn.days < LEARN_DAYS:
        # The home's concern already tells it (concern.py), or a new home's habits are
        # not known yet (watched, not pushed).
        w.quiet |= BIT[RULE]
        return
    acts.append(Raise(RULE, WELFARE_PRIORITY, at, detail={
        "hours": round(hours, 1), "since_ms": w.power_ms, "usual_h": round(usual_h, 1),
        "reasons": [f"plug not used for {hours:.0f} h, far beyond this home's habit "
                    f"({usual})"],
        "reasons_ko": [f"전력 사용 {hours:.0f}시간 없음 — 평소보다 훨씬 긺 ({usual_ko})"]}))
    w.raised |= BIT[RULE]


def restart(cfg: HomeConfig, w: Work, at: int) -> None:
    if w.raised & BIT[RULE]:
        return  # the open alert waits for power use
    w.clear_bits(RULE)
    w.learn.flags &= ~POWER_WATCHED
    w.power_ms = max(w.power_ms, at)


def on_power(cfg: HomeConfig, w: Work, watts: float, at: int, acts: list[Action]) -> None:
    """A ``power_w`` reading at ``at`` (live, or replayed backlog newer than what we had)."""
    if watts <= cfg.thresholds.power_on_w or at <= w.power_ms:
        return
    gap = at - w.power_ms
    if gap >= SWITCHED_ON_MS:
        blind.on_life(w, at)
    concern.on_used(w, at, "plug", acts)
    if w.raised & BIT[RULE]:
        acts.append(Clear(RULE, at, "power used"))
    if gap >= LEARN_MIN_MS and w.mode == NORMAL:
        # Learned even after a push: a habit that changed is told once, not every week
        # (and the usual gap decays, so one long gap is forgotten in weeks).
        learn_gap(w.learn, cfg.thresholds.timezone, "plug_gap", gap, at)
    w.clear_bits(RULE)
    w.learn.flags &= ~POWER_WATCHED
    w.power_ms = at
