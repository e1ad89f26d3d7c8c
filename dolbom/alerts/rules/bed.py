"""Out of bed at night (DESIGN.md §5): a bed sensor reports "out" inside the night
window (local time) and not "in" again within ``out_of_bed_minutes``.

What that means depends on what else the home saw. A person up and about at night
(motion since getting up) is a restless night: the care worker's **watch list**, once a
night, and not even that at an hour this person is usually up (an early riser,
``baseline.p``). A person out of bed with no movement seen since shortly after getting
up may have fallen: that is **raised**, if the motion sensors vouch for "no movement"
(alive, heard since, seeing: ``_motion_vouches``). Without a motion sensor that vouches
the home cannot tell the two apart, so it is only watched.

A silence rule (``silence.py``): the bed sensor must be alive to vouch that no "in"
came. The episode starts only on a live "out" (replayed backlog is history); an "in"
newer than the "out", live or replayed, ends it and clears the alert.
"""

from __future__ import annotations

from dolbom.alerts.model import Rule
from dolbom.alerts.rules import baseline, silence
from dolbom.alerts.rules.actions import Action, Clear, Raise, Watch
from dolbom.alerts.rules.base import BIT, MINUTE_MS, WELFARE_PRIORITY, HomeConfig
from dolbom.alerts.rules.clock import in_window
from dolbom.alerts.rules.observations import ActivityObs
from dolbom.alerts.rules.state import Work

STILL_MS = 20 * MINUTE_MS  # no movement for this long while out of bed: possibly fallen
SEEING_MS = 12 * 60 * MINUTE_MS  # a motion sensor that saw nothing for this long before
# the person got up does not vouch for "no movement" (see _motion_vouches)
USUALLY_UP = 0.5  # at a half hour when this person is up at least this often: not news

RULE = Rule.OUT_OF_BED_AT_NIGHT
LOST_REASON = "bed sensor lost"
NONE_REASON = "no bed sensor"


def mask(cfg: HomeConfig) -> int:
    # A home without a "bed" device may still get bed events (a multisensor mat).
    return cfg.beds or cfg.activity


def _matured(cfg: HomeConfig, w: Work) -> int:
    return w.bed_out_ms + round(cfg.thresholds.out_of_bed_minutes * MINUTE_MS)


def crossing(cfg: HomeConfig, w: Work) -> int | None:
    return _matured(cfg, w) if w.bed_out_ms else None


def due(cfg: HomeConfig, w: Work) -> int | None:
    return None if silence.handled(w, RULE) else crossing(cfg, w)


def fire(cfg: HomeConfig, w: Work, at: int, acts: list[Action]) -> None:
    silence.decide(cfg, w, at, RULE, mask(cfg), (LOST_REASON, NONE_REASON), _raise, acts)


def confirm(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    silence.confirmed(cfg, w, _matured(cfg, w), RULE, _raise, acts)


def _raise(cfg: HomeConfig, w: Work, acts: list[Action]) -> None:
    at = _matured(cfg, w)
    minutes = cfg.thresholds.out_of_bed_minutes
    w.pending &= ~BIT[RULE]
    still = at - w.activity_ms
    if cfg.motion and still >= STILL_MS and _motion_vouches(cfg, w):
        acts.append(Raise(RULE, WELFARE_PRIORITY, at, detail={
            "out_since_ms": w.bed_out_ms, "minutes": minutes,
            "reasons": [f"out of bed at night for {minutes:.0f} min with no movement "
                        f"seen for {still // MINUTE_MS} min: possibly fallen"],
            "reasons_ko": [f"야간 침대 이탈 {minutes:.0f}분, {still // MINUTE_MS}분 동안 "
                           "움직임 없음 — 낙상 가능성"]}))
        w.raised |= BIT[RULE]
        return
    w.quiet |= BIT[RULE]  # this episode is settled: watched, or nothing
    tz = cfg.thresholds.timezone
    L = w.learn
    usually_up = L.p[baseline.half(w.bed_out_ms, tz) % baseline.BINS] >= USUALLY_UP * 255
    day = baseline.local_day(at - 12 * 60 * MINUTE_MS, tz)  # the night's evening
    if usually_up or L.night_day == day % 256:
        return
    L.night_day = day % 256
    acts.append(Watch(RULE, at, (f"up at night for over {minutes:.0f} min "
                                 "(restless night)",),
                      reasons_ko=(f"밤에 {minutes:.0f}분 넘게 깨어 있음 (뒤척인 밤)",)))


def _motion_vouches(cfg: HomeConfig, w: Work) -> bool:
    """Whether "no movement seen" means no movement: every motion sensor of the home is
    alive, was heard since the person got up, and saw a movement in the hours before
    (the evening before bed). A dead sensor, or one that heartbeats but has long been
    blind, sees no movement either; then the home cannot tell a fall from a walk, and
    the episode is only watched. (``blind.suspect`` is no help here: a night in bed is
    itself hours of life without movement.)"""
    m = cfg.motion
    L = w.learn
    return (not w.lost & m
            and L.motion_ms >= w.bed_out_ms - SEEING_MS
            and all(w.seen(i) >= w.bed_out_ms for i in range(m.bit_length()) if m >> i & 1))


def restart(cfg: HomeConfig, w: Work, at: int) -> None:
    if w.raised & BIT[RULE]:
        return  # the open alert waits for "in"
    # Whether the resident is in bed now is unknown: wait for the next "out".
    w.clear_bits(RULE)
    w.bed_out_ms = 0


def on_bed(cfg: HomeConfig, w: Work, obs: ActivityObs, acts: list[Action]) -> None:
    at = obs.at_ms
    if obs.val == "in":
        if w.bed_out_ms and at >= w.bed_out_ms:
            if w.raised & BIT[RULE]:
                acts.append(Clear(RULE, at, "back in bed"))
            w.clear_bits(RULE)
            w.bed_out_ms = 0
        return
    th = cfg.thresholds
    if (obs.val == "out" and not obs.hist and not w.bed_out_ms
            and in_window(at, th.timezone, th.night_start, th.night_end)):
        w.clear_bits(RULE)
        w.bed_out_ms = at
