"""No power use (DESIGN.md §5): in a home with a smart plug, no reading of ``power_w``
above ``power_on_w`` (the kettle, the rice cooker and the TV are signs of an ordinary
day). A silence rule (``silence.py``) against this person's own habit: past
``no_power_h`` (the default) and past one and a half times the usual longest gap this
home has shown (``baseline.plug_gap``), the gap goes to the care worker's **watch
list**, once per gap.

Alone it is never pushed. A plug says what one appliance does, not how the person is:
the TV stays off for a week, someone eats out or cooks on gas, and services that push
"no power use" are right a fraction of a percent of the time. Together with an unused
door it is the home's welfare concern (``concern.py``); a person who has stopped moving
is the quiet concern's and the inactivity tiers' to tell.
"""

from __future__ import annotations

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import blind, concern, silence
from dolbom.alerts.rules.actions import Action, Clear
from dolbom.alerts.rules.base import BIT, HOUR_MS, MINUTE_MS, NORMAL, HomeConfig
from dolbom.alerts.rules.baseline import POWER_WATCHED, learn_gap
from dolbom.alerts.rules.state import Work

RULE = Rule.NO_POWER_USE
LOST_REASON = "plug lost"
NONE_REASON = "no plug"
SWITCHED_ON_MS = 10 * MINUTE_MS  # off this long, then on: someone switched it on
LEARN_MIN_MS = HOUR_MS  # shorter gaps say nothing about the usual longest one


def mask(cfg: HomeConfig) -> int:
    return cfg.plugs


def limit(cfg: HomeConfig, w: Work) -> int:
    """How long the plug may be unused before it is watched, in ms."""
    base = round(cfg.thresholds.no_power_h * HOUR_MS)
    return max(base, w.learn.plug_gap * MINUTE_MS * 3 // 2)


def _matured(cfg: HomeConfig, w: Work) -> int:
    return w.power_ms + limit(cfg, w)


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
    concern.watch_gap(w, RULE, POWER_WATCHED, at, (
        f"plug not used for {hours:.0f} h ({usual})",
        f"전력 사용 {hours:.0f}시간 없음 ({usual_ko})"),
        ("and the door not used for longer than usual", "문 사용도 평소보다 오래 없음"), acts)


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
        blind.on_life(w, at, sign=True)
    concern.on_used(w, at, "plug", acts)
    if w.raised & BIT[RULE]:
        acts.append(Clear(RULE, at, "power used"))
    if gap >= LEARN_MIN_MS and w.mode == NORMAL:
        # Learned even after it was watched: a habit that changed is watched once, not
        # every week (and the usual gap decays, so one long gap is forgotten in weeks).
        learn_gap(w.learn, cfg.thresholds.timezone, "plug_gap", gap, at)
    w.clear_bits(RULE)
    w.learn.flags &= ~POWER_WATCHED
    w.power_ms = at
