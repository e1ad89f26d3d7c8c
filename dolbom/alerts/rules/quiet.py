"""The quiet concern (DESIGN.md §5): a quiet spell far beyond this person's usual for the
time of day, raised within hours instead of at the fixed 12 h inactivity tier.

A collapsed person, a death, a fall without a button press all look the same to the
sensors: nothing moves any more. Whether that is alarming depends on the person and
the hour: two quiet hours at 3 a.m. are sleep, at 10 a.m. for someone who is always
pottering about they are not. ``baseline.py`` scores a spell by its evidence against
this person's own pattern; the concern matures when the evidence reaches
``baseline.threshold`` (twice the largest of their ordinary spells, never below a
floor, conservative while the home is new). It is a silence rule (``silence.py``):
the motion sensors must be alive to vouch for the quiet, a home away or in hospital
is not judged, and when the motion sensors look blind (``blind.suspect``, or one
unseen sign of life in a home where signs are seen: ``blind.alone``) the technical
alert comes instead. Activity ends the spell and resolves the concern. Homes
without a motion sensor rely on the fixed inactivity tiers alone.

A collapsed person may still move a little. While the evidence carried over brief
movements runs (``baseline._carry``), the concern also matures when the carried
evidence plus this spell's reaches the trickle threshold (``baseline.quick_crossing``),
and is told as "hardly any movement for N h".

``quick_at`` is a cheap lower bound while the spell is young (every motion event
re-arms it); the first tick that reaches it computes the exact time.
"""

from __future__ import annotations

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import baseline, blind, silence
from dolbom.alerts.rules.actions import Action, Clear, Raise, Watch
from dolbom.alerts.rules.base import BIT, HOUR_MS, NORMAL, WELFARE_PRIORITY, HomeConfig
from dolbom.alerts.rules.baseline import (
    COMBINED,
    DOOR_LAST,
    INCIDENT,
    INIT,
    QUICK_EXACT,
    WATCHED_OUT,
)
from dolbom.alerts.rules.observations import ActivityObs
from dolbom.alerts.rules.state import Work

RULE = Rule.WELFARE_CONCERN
LOST_REASON = "motion sensors lost"
NONE_REASON = "no motion sensor"
EXIT_MS = 2 * 60_000  # a movement this soon after the door belongs to going out
ARRIVE_MS = 10 * 60_000  # the door after this long of an empty home: someone came in


def mask(cfg: HomeConfig) -> int:
    return cfg.motion


def crossing(cfg: HomeConfig, w: Work) -> int | None:
    return (w.learn.quick_at or None) if cfg.motion else None


def due(cfg: HomeConfig, w: Work) -> int | None:
    b = BIT[RULE]
    if (w.pending | w.quiet) & b:
        return None
    if w.raised & b and not (w.learn.flags & COMBINED and not w.learn.flags & INCIDENT):
        return None  # told; a concern open for the plug and door still hears of the quiet
    return crossing(cfg, w)


def arm(cfg: HomeConfig, w: Work, since: int) -> None:
    """A new quiet spell starts at ``since``."""
    L = w.learn
    L.spell_ms = baseline.sec(since)
    L.flags &= ~(QUICK_EXACT | INCIDENT | WATCHED_OUT)
    L.quick_at = baseline.lower_bound(L, since, cfg.thresholds.timezone) if cfg.motion else 0


def fire(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    L = w.learn
    if not L.flags & QUICK_EXACT:
        t, _ = baseline.quick_crossing(L, cfg.thresholds.timezone, L.spell_ms)
        L.flags |= QUICK_EXACT
        L.quick_at = t or 0
        if t is None or t > at:
            return  # not yet (or not within 24 h: the inactivity tiers take over)
    if w.mode == NORMAL and (blind.suspect(cfg, w) or blind.alone(cfg, w, at)):
        blind.report(cfg, w, at, acts)
        silence.suppress(w, RULE, at, blind.REASON, acts)
        return
    if w.mode == NORMAL and w.lost & cfg.motion:
        # The baseline was learned with every motion sensor: with one of them lost, a
        # quiet spell is what the lost one would have seen, not news (device_lost is).
        silence.suppress(w, RULE, at, LOST_REASON, acts)
        return
    verdict, why = silence.judge(cfg, w, at, cfg.motion, LOST_REASON, NONE_REASON)
    if verdict is silence.Verdict.SUPPRESS:
        silence.suppress(w, RULE, at, why, acts)
    elif L.flags & DOOR_LAST:
        # Gone through the door and not seen since: most likely out. Absence is not
        # inactivity: the watch list, and the inactivity tiers if it lasts.
        hours = (at - L.spell_ms) / HOUR_MS
        acts.append(Watch(RULE, at, (f"not seen for {hours:.1f} h since the door was used "
                                     "(probably out)",),
                          reasons_ko=(f"문 사용 뒤 {hours:.1f}시간 동안 보이지 않음 "
                                      "(외출 중일 가능성)",)))
        L.flags |= WATCHED_OUT
        w.quiet |= BIT[RULE]
    elif _all_heard(cfg, w, at):
        _raise(cfg, w, acts)
    else:
        w.pending |= BIT[RULE]


def _all_heard(cfg: HomeConfig, w: Work, at: int) -> bool:
    """Every motion sensor has been heard at or after ``at``: each vouches for the quiet
    (one that died just before is lost soon, and then the verdict is set aside)."""
    m = cfg.motion
    return all(w.seen(i) >= at for i in range(m.bit_length()) if m >> i & 1)


def confirm(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    at = w.learn.quick_at
    if w.lost & cfg.motion:
        silence.suppress(w, RULE, at, LOST_REASON, acts)
    elif _all_heard(cfg, w, at):
        silence.confirmed(cfg, w, at, RULE, _raise, acts)


def _raise(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    L = w.learn
    at = L.quick_at
    hours = (at - L.spell_ms) / HOUR_MS
    _, trickle = baseline.quick_crossing(L, cfg.thresholds.timezone, L.spell_ms)
    if trickle:
        run_h = (at - L.run_ms) / HOUR_MS
        signal, since = "trickle", L.run_ms
        why = (f"hardly any movement for {run_h:.1f} h (only brief movements, the last "
               f"{hours:.1f} h ago), far below what is usual for this person")
        why_ko = (f"{run_h:.1f}시간 동안 거의 움직임 없음 (잠깐의 움직임뿐, 마지막은 "
                  f"{hours:.1f}시간 전) — 평소보다 훨씬 적음")
    else:
        signal, since = "quiet", L.spell_ms
        why = (f"no movement for {hours:.1f} h, far beyond what is usual for this "
               "person at this time of day")
        why_ko = f"{hours:.1f}시간 동안 움직임 없음 — 이 시간대의 평소보다 훨씬 긺"
    acts.append(Raise(RULE, WELFARE_PRIORITY, at, detail={
        # on a concern already open for the plug and the door, a worse state: told again
        **({"tier": 2} if L.flags & COMBINED else {}),
        "signal": signal,
        "quiet_h": round(hours, 1),
        "since_ms": since,
        "reasons": [why],
        "reasons_ko": [why_ko],
    }))
    w.raised |= BIT[RULE]
    w.pending &= ~BIT[RULE]
    L.flags |= INCIDENT


def restart(cfg: HomeConfig, w: Work, at: int) -> None:
    """The spell counts again from ``at`` (sensors back, or the home back to normal)."""
    if w.raised & BIT[RULE]:
        return  # the open concern waits for activity
    w.clear_bits(RULE)
    w.learn.carry = w.learn.run_ms = 0  # what could not be seen carries nothing
    arm(cfg, w, max(w.learn.spell_ms, at))


def on_activity(cfg: HomeConfig, w: Work, i: int, obs: ActivityObs,
                acts: list[Action]) -> None:
    """Activity newer than the last (call before ``inactivity.on_activity``): learn the
    spell it ends, resolve an open concern, start a new spell."""
    at = obs.at_ms
    if at <= w.activity_ms:
        return
    L = w.learn
    th = cfg.thresholds
    if not L.flags & INIT:
        baseline.prior(L, th.timezone, th.sleep_start, th.sleep_end)
    ordinary = (w.mode == NORMAL and not w.lost & cfg.primary
                and not w.raised & BIT[Rule.INACTIVITY] and not L.flags & WATCHED_OUT)
    baseline.on_activity(L, th.timezone, at, learn=ordinary)
    if L.flags & INCIDENT:
        L.carry = L.run_ms = L.peak = 0  # told, and the person moved: the worker is on it
    b = BIT[RULE]
    if L.flags & COMBINED:
        # The open concern is about the plug and the door (concern.py): movement is no
        # answer to it; only this spell's own verdict is forgotten.
        w.pending &= ~b
        w.quiet &= ~b
    else:
        if w.raised & b:
            acts.append(Clear(RULE, at, "activity resumed"))
        w.clear_bits(RULE)
    motion = bool(cfg.motion >> i & 1) and obs.type in ("motion", "presence")
    if motion:
        blind.on_motion(w, at, acts, w.mode == NORMAL and not w.lost & cfg.motion)
    arrival: bool | None = False  # for blind.on_life: someone came in (None: as it was)
    if obs.type == "door" and cfg.motion:
        if at - w.door_ms <= EXIT_MS:
            arrival = None  # the same passage (open, then closed): as its first event decided
        elif L.flags & DOOR_LAST and at - w.activity_ms >= ARRIVE_MS:
            # The home was empty since the door was last used: this is someone coming
            # home, and a silence from now on is a silence inside the home.
            L.flags &= ~DOOR_LAST
            arrival = True
        else:
            L.flags |= DOOR_LAST  # probably out: the quiet that follows counts for less
    elif not (L.flags & DOOR_LAST and at - w.door_ms <= EXIT_MS):
        # A movement just after the door is the same way out (a PIR holds its output for
        # about a minute and sees the hall); a later one means someone is at home.
        L.flags &= ~DOOR_LAST
    if not motion:
        blind.on_life(w, at, arrival)
    arm(cfg, w, at)
