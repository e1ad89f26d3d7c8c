"""Indoor heat and cold (DESIGN.md §5): ``temperature_c`` ≥ ``heat_c`` (or ≤ ``cold_c``)
for ``temp_minutes``, with hysteresis, at most one alert per rule per ``temp_repeat_h``.

Each device's readings are a Schmitt trigger: a hot condition starts at the first
reading ≥ heat_c and ends only at a reading < heat_c − temp_hysteresis_c (a room
hovering around 32 °C is a hot room, not a flapping one); cold mirrors it. The alert
raises at the first live reading that finds the condition ``temp_minutes`` old, by
reading times (not tick times), and clears when no device of the home is hot (cold)
any more. Per device, so one cool sensor in the hall does not hide a hot bedroom.
Replayed (``hist``) readings are history and do not move the triggers.
"""

from __future__ import annotations

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import silence
from dolbom.alerts.rules.base import (
    BIT,
    HOUR_MS,
    MINUTE_MS,
    NORMAL,
    WELFARE_PRIORITY,
    Action,
    Clear,
    HomeConfig,
    Raise,
    Work,
    mode_reason,
)


def on_temperature(cfg: HomeConfig, w: Work, i: int, celsius: float, at: int,
                   acts: list[Action]) -> None:
    """A live ``temperature_c`` reading of device ``i`` taken at ``at``."""
    th = cfg.thresholds
    b = 1 << i
    since = w.rec(i)[2]
    hot, cold = w.hot & b, w.cold & b
    if hot and celsius < th.heat_c - th.temp_hysteresis_c:
        hot, since = 0, 0
    if cold and celsius > th.cold_c + th.temp_hysteresis_c:
        cold, since = 0, 0
    if not hot and not cold:
        if celsius >= th.heat_c:
            hot, since = b, at
        elif celsius <= th.cold_c:
            cold, since = b, at
    w.hot = (w.hot & ~b) | hot
    w.cold = (w.cold & ~b) | cold
    w.set_temp(i, since)
    for rule, mask in ((Rule.HEAT, w.hot), (Rule.COLD, w.cold)):
        if not mask and (w.raised | w.quiet) & BIT[rule]:
            if w.raised & BIT[rule]:
                acts.append(Clear(rule, at, "temperature back to normal"))
            w.clear_bits(rule)
    if (hot or cold) and at - since >= round(th.temp_minutes * MINUTE_MS):
        _matured(cfg, w, Rule.HEAT if hot else Rule.COLD, i, celsius, since, at, acts)


def _matured(cfg: HomeConfig, w: Work, rule: Rule, i: int, celsius: float,
             since: int, at: int, acts: list[Action]) -> None:
    if (w.raised | w.quiet) & BIT[rule]:
        return
    if w.mode != NORMAL:
        silence.suppress(w, rule, at, mode_reason(w), acts)
        return
    last = w.heat_raised_ms if rule is Rule.HEAT else w.cold_raised_ms
    if last and at - last < round(cfg.thresholds.temp_repeat_h * HOUR_MS):
        return  # at most one alert of this rule per temp_repeat_h
    device = cfg.ids[i]
    acts.append(Raise(rule, WELFARE_PRIORITY, at, device=device, detail={
        "device": device, "temperature_c": celsius, "since_ms": since}))
    w.raised |= BIT[rule]
    if rule is Rule.HEAT:
        w.heat_raised_ms = at
    else:
        w.cold_raised_ms = at
