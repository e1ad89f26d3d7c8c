"""Indoor heat and cold (DESIGN.md §5): ``temperature_c`` ≥ ``heat_c`` (or ≤ ``cold_c``)
for ``temp_minutes``, with hysteresis, at most one alert of a level a day.

Each device's readings are a Schmitt trigger: a hot condition starts at the first
reading ≥ heat_c and ends only at a reading < heat_c − temp_hysteresis_c (a room
hovering around 32 °C is a hot room, not a flapping one); cold mirrors it. The alert
raises when the condition is ``temp_minutes`` old (at a reading, or between readings:
below), and clears when no device of the home is hot (cold) any more. Replayed
(``hist``) readings are history and do not move the triggers.

**Within the sensor's accuracy.** A sensor may read up to ``TOLERANCE_C`` below a room
that is at the limit. So a run of readings (each within ``RECENT_MS`` of the last) that
stays within ``TOLERANCE_C`` of the limit counts toward ``temp_minutes`` from its first
reading, once a reading reaches the limit itself: a room that crept up to 31.6 °C and has
now read 32 °C has been hot for as long as it crept, not since this reading. Nothing is
told before a reading reaches the limit.

**Levels.** Danger grows with the temperature: level 1 at ``heat_c``, 2 at
``heat_c`` + ``LEVEL_STEP_C``, 3 at twice that (cold mirrors it below ``cold_c``). A
higher level than the open alert's is told again at once (``tier`` in the detail: the
alert store notifies a worse tier); the once-per-``temp_repeat_h`` limit holds for the
same level only. A level 2 or 3 reading is raised after half of ``temp_minutes``.

**Between readings.** A battery sensor reads every 10–15 minutes; waiting for the first
reading after the condition is ``temp_minutes`` old would add that much to every alert.
So the condition also matures on a timer (``due``/``fire``, run by the engine like the
silence rules) at the moment it is ``temp_minutes`` old, judged on the device's last
reading: the room is hot until a reading says it cooled (the Schmitt trigger above). A
device lost, or whose last reading is more than ``RECENT_MS`` old, is not judged on it.
``temp_flags`` keeps the level judged in the current spell, so each level is judged once.

**Readings that are not the room.** A sensor in the afternoon sun, or next to the
cooker, reads 35 °C in a room that is fine. Two checks, from physics rather than from
any one home's data: the reading *disagrees* with another temperature sensor of the
home heard within the hour that is not hot (cold) and ``DISAGREE_C`` or more cooler
(warmer), or the condition began with a
*jump* (``JUMP_C`` or more within ``JUMP_MS``: room air does not warm that fast). Either
makes it a technical matter (``SENSOR_DISAGREES``, for the operators) instead of heat or
cold. A jump alone is given ``JUMP_TRUST_MS``: a condition that lasts that long is
taken as the room's (sun moves on, a room stays hot); a spell another sensor contradicted
never is, even when the readings converge as the sensor cools.
"""

from __future__ import annotations

from dolbom.alerts.model import Priority, Rule
from dolbom.alerts.rules import silence
from dolbom.alerts.rules.actions import Action, Clear, Raise
from dolbom.alerts.rules.base import BIT, HOUR_MS, MINUTE_MS, NORMAL, WELFARE_PRIORITY, HomeConfig
from dolbom.alerts.rules.baseline import DISPUTED, JUMPED, NEAR, TEMP_SLOTS, local_day
from dolbom.alerts.rules.state import Work, mode_reason

LEVEL_STEP_C = 3.0
DISAGREE_C = 3.0
RECENT_MS = HOUR_MS  # another sensor's reading this recent counts as "now"
JUMP_C = 4.0
JUMP_MS = 30 * MINUTE_MS
JUMP_TRUST_MS = 3 * HOUR_MS
# A room sensor's accuracy (DHT22 ±0.5 °C; SHT31 ±0.3 °C): a reading this close to the
# limit may be a room already at it.
TOLERANCE_C = 0.5


RULE = Rule.HEAT  # as a timed rule (it judges cold too); never pending, no sensors to vouch
LOST_REASON = NONE_REASON = "no temperature sensor"
JUDGED_SHIFT = 2  # temp_flags bits 2-3: the level judged in the current spell


def _level(cfg: HomeConfig, rule: Rule, celsius: float) -> int:
    th = cfg.thresholds
    beyond = celsius - th.heat_c if rule is Rule.HEAT else th.cold_c - celsius
    return 1 + min(2, max(0, int(beyond // LEVEL_STEP_C)))


def _remember(w: Work, i: int, celsius: float, at: int
              ) -> tuple[int, tuple[float, int] | None]:
    """Keep device ``i``'s reading; return its slot and previous reading (°C, ms)."""
    L = w.learn
    prev = None
    slot = next((k for k in range(TEMP_SLOTS) if L.temp_dev[k] == i + 1), -1)
    if slot >= 0:
        prev = (L.temp_c[slot] / 10, L.temp_min[slot] * MINUTE_MS)
    else:  # a free slot, else the one heard longest ago
        slot = min(range(TEMP_SLOTS), key=lambda k: (L.temp_dev[k] != 0, L.temp_min[k]))
        L.temp_flags[slot] = 0
    L.temp_dev[slot] = i + 1
    L.temp_c[slot] = max(-32_768, min(32_767, round(celsius * 10)))
    L.temp_min[slot] = min(at // MINUTE_MS, 2**32 - 1)
    return slot, prev


def _others_disagree(cfg: HomeConfig, w: Work, i: int, rule: Rule, at: int) -> float | None:
    """The reading of another device of the home, heard within the hour, that says the
    room is not hot (cold): below heat_c (above cold_c) and ``DISAGREE_C`` or more
    cooler (warmer) than this one."""
    L, th = w.learn, cfg.thresholds
    mine = L.temp_c[next(k for k in range(TEMP_SLOTS) if L.temp_dev[k] == i + 1)] / 10
    for k in range(TEMP_SLOTS):
        j = L.temp_dev[k] - 1
        if j < 0 or j == i or at - L.temp_min[k] * MINUTE_MS > RECENT_MS:
            continue
        c = L.temp_c[k] / 10
        if rule is Rule.HEAT and c < th.heat_c and mine - c >= DISAGREE_C:
            return c
        if rule is Rule.COLD and c > th.cold_c and c - mine >= DISAGREE_C:
            return c
    return None


def on_temperature(cfg: HomeConfig, w: Work, i: int, celsius: float, at: int,
                   acts: list[Action]) -> None:
    """A live ``temperature_c`` reading of device ``i`` taken at ``at``."""
    th = cfg.thresholds
    b = 1 << i
    slot, prev = _remember(w, i, celsius, at)
    flags = w.learn.temp_flags
    since = w.rec(i)[2]
    hot, cold = w.hot & b, w.cold & b
    if hot and celsius < th.heat_c - th.temp_hysteresis_c:
        hot, since = 0, 0
    if cold and celsius > th.cold_c + th.temp_hysteresis_c:
        cold, since = 0, 0
    if not hot and not cold:
        near = celsius >= th.heat_c - TOLERANCE_C or celsius <= th.cold_c + TOLERANCE_C
        if not (near and flags[slot] & NEAR and prev is not None
                and at - prev[1] <= RECENT_MS):
            flags[slot], since = (NEAR, at) if near else (0, 0)  # a new run, or none
        if celsius >= th.heat_c:
            hot = b
        elif celsius <= th.cold_c:
            cold = b
        if ((near and since == at) or hot or cold) and prev is not None and (
                at - prev[1] <= JUMP_MS and abs(celsius - prev[0]) >= JUMP_C):
            flags[slot] |= JUMPED  # the run, or the condition, began with a jump
    w.hot = (w.hot & ~b) | hot
    w.cold = (w.cold & ~b) | cold
    w.set_temp(i, since)
    for rule, mask in ((Rule.HEAT, w.hot), (Rule.COLD, w.cold)):
        if not mask and (w.raised | w.quiet) & BIT[rule]:
            if w.raised & BIT[rule]:
                acts.append(Clear(rule, at, "temperature back to normal"))
            w.clear_bits(rule)
    if not w.hot and not w.cold and w.raised & BIT[Rule.SENSOR_DISAGREES]:
        acts.append(Clear(Rule.SENSOR_DISAGREES, at, "readings back to normal"))
        w.raised &= ~BIT[Rule.SENSOR_DISAGREES]
    if not (hot or cold):
        return
    rule = Rule.HEAT if hot else Rule.COLD
    level = _level(cfg, rule, celsius)
    if at - since < _need(cfg, level):
        return
    _judge(cfg, w, i, slot, rule, level, celsius, since, at, acts)


def _need(cfg: HomeConfig, level: int) -> int:
    """How long a condition of ``level`` must last before it is told (ms)."""
    return round(cfg.thresholds.temp_minutes * MINUTE_MS) // (2 if level > 1 else 1)


def _judge(cfg: HomeConfig, w: Work, i: int, slot: int, rule: Rule, level: int,
           celsius: float, since: int, at: int, acts: list[Action]) -> None:
    """The condition of device ``i`` (its reading in ``slot``) is old enough: tell it,
    or the sensor's doubt instead."""
    flags = w.learn.temp_flags
    judged = max(flags[slot] >> JUDGED_SHIFT & 3, level)
    flags[slot] = (flags[slot] & ~(3 << JUDGED_SHIFT)) | judged << JUDGED_SHIFT
    other = _others_disagree(cfg, w, i, rule, at)
    if other is not None:
        flags[slot] |= DISPUTED  # for the rest of this spell, even as readings converge
    if flags[slot] & DISPUTED or (flags[slot] & JUMPED and at - since < JUMP_TRUST_MS):
        _suspect(cfg, w, i, rule, celsius, other, at, acts)
        return
    _matured(cfg, w, rule, level, i, celsius, since, at, acts)


def _conditions(cfg: HomeConfig, w: Work) -> list[tuple[int, int, int, Rule, int, float]]:
    """(matures, device, slot, rule, level, °C) of each device in a hot or cold condition
    on its last reading whose level has not been judged yet in this spell."""
    L = w.learn
    out = []
    for slot in range(TEMP_SLOTS):
        i = L.temp_dev[slot] - 1
        if i < 0 or i >= len(cfg.ids):
            continue
        b = 1 << i
        if not (w.hot | w.cold) & b or w.lost & b:
            continue
        rule = Rule.HEAT if w.hot & b else Rule.COLD
        celsius = L.temp_c[slot] / 10
        level = _level(cfg, rule, celsius)
        if level <= L.temp_flags[slot] >> JUDGED_SHIFT & 3:
            continue
        out.append((w.rec(i)[2] + _need(cfg, level), i, slot, rule, level, celsius))
    return out


def mask(cfg: HomeConfig) -> int:
    return 0  # not a silence rule: nothing pends on a sensor's next word


def crossing(cfg: HomeConfig, w: Work) -> int | None:
    return None


def due(cfg: HomeConfig, w: Work) -> int | None:
    """When the next hot or cold condition is old enough, between readings."""
    if not (w.hot or w.cold):
        return None
    return min((c[0] for c in _conditions(cfg, w)), default=None)


def fire(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    for matures, i, slot, rule, level, celsius in _conditions(cfg, w):
        if matures > at:
            continue
        if at - w.learn.temp_min[slot] * MINUTE_MS > RECENT_MS:
            # Too old to stand for the room now: judged when a reading comes.
            flags = w.learn.temp_flags
            flags[slot] = (flags[slot] & ~(3 << JUDGED_SHIFT)) | level << JUDGED_SHIFT
            continue
        _judge(cfg, w, i, slot, rule, level, celsius, w.rec(i)[2], at, acts)


def confirm(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    return None  # never pending


def restart(cfg: HomeConfig, w: Work, at: int) -> None:
    return None


def _suspect(cfg: HomeConfig, w: Work, i: int, rule: Rule, celsius: float,
             other: float | None, at: int, acts: list[Action]) -> None:
    if w.raised & BIT[Rule.SENSOR_DISAGREES]:
        return
    device = cfg.ids[i]
    why = (f"reads {celsius:.1f} °C while another sensor of the home reads {other:.1f} °C"
           if other is not None else
           f"jumped to {celsius:.1f} °C faster than room air can (sun or a heat source)")
    why_ko = (f"{celsius:.1f}°C — 같은 집의 다른 센서는 {other:.1f}°C" if other is not None
              else f"{celsius:.1f}°C로 급변 — 실내 공기로는 불가능한 속도 (햇빛·열원)")
    acts.append(Raise(Rule.SENSOR_DISAGREES, Priority.LOW, at, device=device, detail={
        "device": device, "temperature_c": celsius, "other_c": other,
        "reasons": [f"{rule.value} reading not trusted: {why}; check where the sensor is"],
        "reasons_ko": [f"온도 측정값 의심: {why_ko} — 설치 위치를 확인하세요"]}))
    w.raised |= BIT[Rule.SENSOR_DISAGREES]


def _same_day(cfg: HomeConfig, last: int, at: int) -> bool:
    """Within the once-a-day limit: ``temp_repeat_h`` has not passed since ``last``, and
    (for a new hot spell, the room having cooled in between) it is still the same
    local day or less than half of ``temp_repeat_h`` ago. A heatwave is told once each
    hot afternoon, a room that hovers around the limit once a day."""
    repeat = round(cfg.thresholds.temp_repeat_h * HOUR_MS)
    if at - last >= repeat:
        return False
    tz = cfg.thresholds.timezone
    return at - last < repeat // 2 or local_day(last, tz) == local_day(at, tz)


def _matured(cfg: HomeConfig, w: Work, rule: Rule, level: int, i: int, celsius: float,
             since: int, at: int, acts: list[Action]) -> None:
    told = w.learn.heat_level if rule is Rule.HEAT else w.learn.cold_level  # last raised
    if w.quiet & BIT[rule] or (w.raised & BIT[rule] and level <= told):
        return
    if w.mode != NORMAL:
        silence.suppress(w, rule, at, mode_reason(w), acts)
        return
    last = w.heat_raised_ms if rule is Rule.HEAT else w.cold_raised_ms
    if not w.raised & BIT[rule] and last and level <= told and _same_day(cfg, last, at):
        return  # at most one alert of the same level a day
    device = cfg.ids[i]
    word = "hot" if rule is Rule.HEAT else "cold"
    acts.append(Raise(rule, WELFARE_PRIORITY, at, device=device, detail={
        "device": device, "temperature_c": celsius, "since_ms": since, "tier": level,
        "reasons": [f"room {word}: {celsius:.1f} °C for {(at - since) // MINUTE_MS} min "
                    f"(level {level})"],
        "reasons_ko": [f"실내 {'고온' if rule is Rule.HEAT else '저온'} {celsius:.1f}°C, "
                       f"{(at - since) // MINUTE_MS}분 지속 ({level}단계)"]}))
    w.raised |= BIT[rule]
    if rule is Rule.HEAT:
        w.learn.heat_level = level
        w.heat_raised_ms = at
    else:
        w.learn.cold_level = level
        w.cold_raised_ms = at
