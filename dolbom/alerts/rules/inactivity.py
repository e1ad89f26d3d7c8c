"""Inactivity tiers (DESIGN.md §5): no activity from any activity sensor for 12 h
(caution), 24 h (alarm), 36 h (danger) of *awake* time.

Time inside the resident's sleep window (local time) does not count. Any activity
event (motion, door, bed, presence) from any device ends the silence and clears the
alert. The verdict follows the silence rules (``silence.py``): never while every
activity sensor is lost, and not in away/hospital mode.

A silence that began with the person going out through the door (``baseline.DOOR_LAST``:
the door was the last thing seen, and nobody came in since) is an absence, not
inactivity: sensors inside the home cannot see a person who is not there, and stays
nobody announced (a day out, a night at family, hospital) are the commonest false
inactivity alarm of the national services. Its tiers go to the care worker's daily
watch list ("not at home for N h"). Someone who comes home and then falls silent is
judged as usual: the door after an empty home is an arrival (``quiet.on_activity``).

Once a home's habits are known (``baseline.LEARN_DAYS``), the caution tier (12 h) is
told only when the spell is beyond what this person's own days show (the quiet
concern's threshold, ``baseline.threshold``) and the concern has not told it already;
otherwise it is watched. The alarm and danger tiers are hard limits: always told.

``inact_at`` is when the next tier matures. Computing it exactly walks the sleep
windows in the resident's time zone, which is too dear for every motion event of
300,000 homes, so an activity event stores the cheap lower bound "last activity +
tier hours of wall time" (sleep only postpones the crossing) and the first tick
that reaches it replaces it with the exact time.
"""

from __future__ import annotations

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import blind, devices, silence
from dolbom.alerts.rules.actions import Action, Clear, Raise, Watch
from dolbom.alerts.rules.base import BIT, HOUR_MS, NORMAL, WELFARE_PRIORITY, HomeConfig
from dolbom.alerts.rules.baseline import (
    DOOR_LAST,
    INCIDENT,
    LEARN_DAYS,
    evidence,
    threshold,
)
from dolbom.alerts.rules.clock import awake_crossing
from dolbom.alerts.rules.state import Work

RULE = Rule.INACTIVITY
LOST_REASON = "activity sensors lost"
NONE_REASON = "no activity sensor"
TIERS = 3


def tier_ms(cfg: HomeConfig, tier: int) -> int:
    """Awake silence after which tier ``tier`` (1-3) matures."""
    th = cfg.thresholds
    hours = (th.inactivity_caution_h, th.inactivity_alarm_h, th.inactivity_danger_h)[tier - 1]
    return round(hours * HOUR_MS)


def lower_bound(cfg: HomeConfig, since: int, tier: int) -> int:
    """A time no later than the crossing of tier ``tier + 1`` (0 when all tiers are done)."""
    return since + tier_ms(cfg, tier + 1) if tier < TIERS else 0


def mask(cfg: HomeConfig) -> int:
    # The primary sensors: with every motion sensor lost, a door sensor alone does not
    # vouch for a silence (DESIGN.md §5, "silence is not safety" per sensor).
    return cfg.primary


def crossing(cfg: HomeConfig, w: Work) -> int | None:
    return w.inact_at if w.inact_tier < TIERS else None


def due(cfg: HomeConfig, w: Work) -> int | None:
    # Raised does not stop the clock: tiers 2 and 3 follow tier 1. Suppressed does,
    # except in a home with no working primary sensor: its clock tells that nobody can
    # see the resident (``devices.unwatched``).
    b = BIT[RULE]
    if w.pending & b or (w.quiet & b and not (w.mode == NORMAL and devices.blind(cfg, w))):
        return None
    return crossing(cfg, w)


def fire(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    if not w.inact_exact:
        th = cfg.thresholds
        w.inact_at = awake_crossing(w.activity_ms, tier_ms(cfg, w.inact_tier + 1),
                                    th.timezone, th.sleep_start, th.sleep_end)
        w.inact_exact = True
        if w.inact_at > at:
            return  # the sleep window postponed it
    if w.mode == NORMAL and devices.blind(cfg, w):
        # Nobody can see the resident: no inactivity verdict (the silence may be the
        # sensors'), but the care worker is told again how long the home has been
        # unseen, and the clock starts again for the next word (at most about a day).
        if not devices.unwatched(cfg, w, at, acts):
            silence.suppress(w, RULE, at, LOST_REASON, acts)
        restart(cfg, w, at)
        return
    if w.mode == NORMAL and blind.suspect(cfg, w):
        blind.report(cfg, w, at, acts)  # a blind sensor, not an inactive resident
        silence.suppress(w, RULE, at, blind.REASON, acts)
        return
    if w.mode == NORMAL and w.inact_tier == 0 and blind.alone(cfg, w, at):
        # One unseen sign: the technical alert (which also says the resident may be
        # unable to move) instead of the caution tier; the alarm tier still comes.
        blind.report(cfg, w, at, acts)
        acts.append(Watch(RULE, at, (f"no activity for {tier_ms(cfg, 1) // HOUR_MS} h of "
                                     "awake time; the motion sensor may not see "
                                     f"({blind.REASON})",),
                          reasons_ko=(f"깨어 있는 시간 {tier_ms(cfg, 1) // HOUR_MS}시간 동안 "
                                      "활동 없음; 움직임 감지기 이상 가능성",)))
        _advance(cfg, w, 1, at)
        return
    silence.decide(cfg, w, at, RULE, cfg.primary, (LOST_REASON, NONE_REASON), _raise, acts)


def confirm(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    silence.confirmed(cfg, w, w.inact_at, RULE, _raise, acts)


def _raise(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    tier, at = w.inact_tier + 1, w.inact_at
    silent_h = tier_ms(cfg, tier) / HOUR_MS  # awake hours; sleep not counted
    if cfg.motion and w.learn.flags & DOOR_LAST:
        # The silence began with someone going out through the door, and nobody was seen
        # inside since: the person is most likely not at home (a day out, a stay in
        # hospital nobody told us of), and sensors inside cannot see them either way.
        # That is an absence, not inactivity: each tier goes to the daily watch list,
        # where the care worker sees how long the home has been empty.
        acts.append(Watch(RULE, at, (f"not at home for {silent_h:.0f} h of awake time: "
                                     "no activity since the door was used",),
                          reasons_ko=(f"깨어 있는 시간 {silent_h:.0f}시간 동안 집에 없음: "
                                      "문 사용 뒤 활동 없음",)))
    elif tier == 1 and _told_or_usual(cfg, w, at):
        # The caution tier of a home whose habits are known: a spell this quiet is
        # within what this person's own days show (a long day out with no door sensor,
        # a long lie-in), or the quiet concern has told this spell already. Watched;
        # the alarm and danger tiers are told whatever the habits.
        if not w.raised & BIT[Rule.WELFARE_CONCERN]:
            acts.append(Watch(RULE, at, (f"no activity for {silent_h:.0f} h of awake time "
                                         "(quiet spells this long are usual for this "
                                         "person)",),
                              reasons_ko=(f"깨어 있는 시간 {silent_h:.0f}시간 동안 활동 없음 "
                                          "(이 사람에게는 흔한 긴 조용한 시간)",)))
    else:
        acts.append(Raise(RULE, WELFARE_PRIORITY, at, detail={
            "tier": tier, "silent_h": silent_h, "since_ms": w.activity_ms}))
        w.raised |= BIT[RULE]
    _advance(cfg, w, tier, at)


def _advance(cfg: HomeConfig, w: Work, tier: int, at: int) -> None:
    """Tier ``tier`` is done with (told, watched or set aside): the clock goes on."""
    w.inact_tier = tier
    w.inact_at = max(at, lower_bound(cfg, w.activity_ms, tier)) if tier < TIERS else 0
    w.inact_exact = False
    w.pending &= ~BIT[RULE]


def _told_or_usual(cfg: HomeConfig, w: Work, at: int) -> bool:
    L = w.learn
    if not cfg.motion or L.days < LEARN_DAYS:
        return False  # the fixed tiers alone
    if w.raised & BIT[Rule.WELFARE_CONCERN] and L.flags & INCIDENT:
        return True
    tz = cfg.thresholds.timezone
    return evidence(L, tz, L.spell_ms, at) < threshold(L, L.spell_ms, tz)


def on_activity(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    """A sign of life at ``at`` (live, or replayed backlog newer than what we had)."""
    if at <= w.activity_ms:
        return  # older than the last activity we know of: changes nothing
    if w.raised & BIT[RULE]:
        acts.append(Clear(RULE, at, "activity resumed"))
    w.clear_bits(RULE)
    w.activity_ms, w.inact_tier = at, 0
    w.inact_at, w.inact_exact = lower_bound(cfg, at, 0), False


def restart(cfg: HomeConfig, w: Work, at: int) -> None:
    """The silence counts again from ``at``: what passed before could not be seen (sensors
    lost) or did not matter (away). An open alert keeps its tier; activity clears it."""
    b = BIT[RULE]
    w.activity_ms = max(w.activity_ms, at)
    if not w.raised & b:
        w.inact_tier = 0
    w.inact_at, w.inact_exact = lower_bound(cfg, w.activity_ms, w.inact_tier), False
    w.pending &= ~b
    w.quiet &= ~b


def rethreshold(cfg: HomeConfig, w: Work) -> None:
    """The thresholds changed: recompute the next crossing from the new ones."""
    w.inact_at, w.inact_exact = lower_bound(cfg, w.activity_ms, w.inact_tier), False
