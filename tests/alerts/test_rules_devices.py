"""Technical rules: device and gateway lost, battery low, tamper (DESIGN.md §5)."""

from __future__ import annotations

from itertools import pairwise

import pytest

from dolbom.alerts.engine import Clear, DeviceInfo, Raise, StatusObs, unheard
from dolbom.alerts.model import Priority, Rule, Thresholds
from tests.alerts.enginekit import (
    BED,
    BUTTON,
    DAY,
    DOOR,
    GATEWAY,
    MIN,
    PIR,
    PIR_ONLY,
    PLUG,
    SIX,
    SMOKE,
    H,
    Home,
    S,
    local,
)

T0 = local(2, 8)


@pytest.mark.parametrize(("dev", "factor", "lost_after", "priority"), [
    # mains: 3 x hb 60 s; the home's only motion sensor, so the care worker is told
    (PIR, 3.0, 180 * S, Priority.MEDIUM),
    (PLUG, 3.0, 180 * S, Priority.LOW),
    (DOOR, 3.0, 900 * S, Priority.LOW),  # battery without an announced next: 3 x hb 300 s
    (SMOKE, 2.0, 600 * S, Priority.LOW),  # lost_factor is per resident
])
def test_lost_at_exactly_factor_times_the_promised_interval(
        dev: DeviceInfo, factor: float, lost_after: int, priority: Priority) -> None:
    """A device is lost at lost_factor x its promised interval of silence, not a ms before."""
    home = Home(start=T0, thresholds=Thresholds(lost_factor=factor))
    home.silence(dev)
    home.run(T0 + lost_after - 1)
    assert home.raised() == []
    assert home.deadline() == T0 + lost_after
    home.run(T0 + lost_after)
    [r] = home.raised()
    assert (r.rule, r.at_ms, r.device, r.priority) == (
        Rule.DEVICE_LOST, T0 + lost_after, dev.device, priority)
    assert r.detail["kind"] == dev.kind


@pytest.mark.parametrize(("next_s", "lost_after"),
                         [(900, 2700 * S), (120, 360 * S), (None, 900 * S)])
def test_battery_lost_uses_the_announced_next(next_s: int | None, lost_after: int) -> None:
    """A battery node that announced ``next`` is lost after 3 x next (else 3 x hb_s)."""
    home = Home(start=T0)
    home.silence(DOOR)
    home.status(DOOR, T0 + MIN, "sleeping", next_s)
    home.run(T0 + MIN + lost_after - 1)
    assert home.raised() == []
    home.run(T0 + MIN + lost_after)
    [r] = home.raised()
    assert (r.rule, r.device, r.at_ms) == (Rule.DEVICE_LOST, "door-1", T0 + MIN + lost_after)
    assert r.detail["promised_s"] == (next_s or 300)


def test_a_mains_device_announcing_next_keeps_its_heartbeat() -> None:
    """``next`` is a battery node's promise; a mains node is held to its hb_s."""
    home = Home(start=T0)
    home.silence(PIR)
    home.status(PIR, T0, "ready", 900)
    home.run(T0 + 180 * S)
    assert [r.at_ms for r in home.raised(Rule.DEVICE_LOST)] == [T0 + 180 * S]


@pytest.mark.parametrize("state", ["lost", "disconnected"])
def test_last_will_is_no_sign_of_life(state: str) -> None:
    """The broker's Last Will (or a goodbye) does not count as hearing the device."""
    home = Home(start=T0)
    home.silence(PIR)
    home.status(PIR, T0 + 170 * S, state)
    home.run(T0 + 180 * S)
    assert [r.device for r in home.raised(Rule.DEVICE_LOST)] == ["pir-1"]


def test_device_back_clears_only_when_no_device_is_lost() -> None:
    """DEVICE_LOST auto-resolves when the last lost device of the home is heard again."""
    home = Home(start=T0)
    home.silence(PIR, PLUG)
    home.run(T0 + 10 * MIN)
    assert sorted(r.device or "" for r in home.raised(Rule.DEVICE_LOST)) == ["pir-1", "plug-1"]
    home.revive(PIR, T0 + 11 * MIN)
    assert home.cleared() == []
    home.revive(PLUG, T0 + 12 * MIN)
    assert home.cleared() == [Clear(Rule.DEVICE_LOST, T0 + 12 * MIN, "device heard again")]


def test_priority_is_medium_once_no_motion_sensor_works() -> None:
    """Losing the home's primary sensor (its only motion sensor) is medium even while a
    bed sensor works: the bed alone cannot see the resident about the home."""
    home = Home(devices=(PIR, BED, BUTTON), start=T0)
    home.silence(PIR)
    home.run(T0 + 10 * MIN)
    home.silence(BED)
    home.run(T0 + 20 * MIN)
    assert [(r.device, r.priority) for r in home.raised()] == [
        ("pir-1", Priority.MEDIUM), ("bed-1", Priority.MEDIUM)]


def test_a_second_motion_sensor_keeps_a_lost_one_low() -> None:
    """Low while another motion sensor watches; medium for the loss that leaves none."""
    pir2 = DeviceInfo("pir-2", "pir", "mains", 60)
    home = Home(devices=(PIR, pir2, BED, BUTTON), start=T0)
    home.silence(PIR)
    home.run(T0 + 10 * MIN)
    home.silence(pir2)
    home.run(T0 + 20 * MIN)
    assert [(r.device, r.priority) for r in home.raised()] == [
        ("pir-1", Priority.LOW), ("pir-2", Priority.MEDIUM)]


def test_a_non_activity_device_lost_in_a_blind_home_is_medium() -> None:
    """With every activity sensor already lost, any further loss goes to the care worker."""
    home = Home(devices=(PIR, BUTTON), start=T0)
    home.silence(PIR, BUTTON)
    home.run(T0 + 20 * MIN)
    assert [(r.device, r.priority) for r in home.raised()] == [
        ("pir-1", Priority.MEDIUM), ("btn-1", Priority.MEDIUM)]


def test_a_gateway_and_its_devices_going_quiet_together_is_one_gateway_lost() -> None:
    """The gateway and a plug fall silent together (the home's link is down): one
    GATEWAY_LOST, and the plug is unknown, not a DEVICE_LOST of its own; the gateway back
    clears it."""
    home = Home(devices=(*SIX, GATEWAY), start=T0)
    home.silence(GATEWAY, PLUG)
    home.run(T0 + 5 * MIN)
    assert [r.rule for r in home.raised()] == [Rule.GATEWAY_LOST]
    assert home.state.view().lost  # the plug's verdicts pause all the same
    home.revive(GATEWAY, T0 + 6 * MIN)
    assert [c.rule for c in home.cleared()] == [Rule.GATEWAY_LOST]


def test_a_device_that_died_during_the_cut_is_lost_once_its_gateway_is_back() -> None:
    """The gateway and the plug fall silent together; the gateway comes back, the plug
    does not (it died during the cut): its own DEVICE_LOST, one interval after the gateway
    was heard again, never while the gateway was away."""
    home = Home(devices=(*SIX, GATEWAY), start=T0)
    home.silence(GATEWAY, PLUG)
    home.run(T0 + 30 * MIN)
    assert [r.rule for r in home.raised()] == [Rule.GATEWAY_LOST]
    back = T0 + 31 * MIN
    home.revive(GATEWAY, back)
    home.run(back + 10 * MIN)
    lost = [(r.rule, r.device, r.at_ms) for r in home.raised(Rule.DEVICE_LOST)]
    factor = home.cfg.thresholds.lost_factor
    assert lost == [(Rule.DEVICE_LOST, "plug-1", back + round(factor * PLUG.hb_s * S))]
    assert home.raised(Rule.DEVICE_LOST)[0].priority == Priority.LOW  # others still see


def test_a_device_pending_after_the_cut_survives_the_rules_going_deaf() -> None:
    """The rules' own stream drops just after the gateway is back: the unknown plug's
    deadline counts again from when they hear again, it is not forgotten."""
    home = Home(devices=(*SIX, GATEWAY), start=T0)
    home.silence(GATEWAY, PLUG)
    home.run(T0 + 30 * MIN)
    back = T0 + 31 * MIN
    home.revive(GATEWAY, back)
    deaf_until = back + 2 * MIN
    home.run(deaf_until - 1)
    home.state = unheard(home.cfg, home.state, deaf_until)
    home.run(deaf_until + 10 * MIN)
    factor = home.cfg.thresholds.lost_factor
    assert [r.at_ms for r in home.raised(Rule.DEVICE_LOST)] == [
        deaf_until + round(factor * PLUG.hb_s * S)]


def test_a_device_back_through_its_gateway_is_not_lost() -> None:
    """The plug comes back a minute after its gateway (the gateway's backlog first): heard,
    no DEVICE_LOST; and a device lost before the cut keeps its one alert."""
    home = Home(devices=(*SIX, GATEWAY), start=T0)
    home.silence(SMOKE)
    home.run(T0 + 3 * 60 * MIN)  # the smoke detector is lost on its own first
    assert [r.device for r in home.raised(Rule.DEVICE_LOST)] == ["smoke-1"]
    home.silence(GATEWAY, PLUG)
    home.run(T0 + 4 * 60 * MIN)
    back = T0 + 4 * 60 * MIN + MIN
    home.revive(GATEWAY, back)
    home.revive(PLUG, back + MIN)
    home.run(back + 60 * MIN)
    assert [r.device for r in home.raised(Rule.DEVICE_LOST)] == ["smoke-1"]
    assert home.state.view().lost == 1 << SIX.index(SMOKE)  # only the smoke detector is lost


def test_a_device_silent_while_its_gateway_is_heard_is_lost_itself() -> None:
    """Only the plug falls silent; the gateway keeps sending: the plug's own DEVICE_LOST
    (judged once the gateway has shown it is alive), and no GATEWAY_LOST."""
    home = Home(devices=(*SIX, GATEWAY), start=T0)
    home.silence(PLUG)
    home.run(T0 + 5 * MIN)
    assert [(r.rule, r.device) for r in home.raised()] == [(Rule.DEVICE_LOST, "plug-1")]


def test_a_home_left_unseen_behind_its_lost_gateway_tells_the_care_worker() -> None:
    """Everything behind the gateway falls silent with it: one GATEWAY_LOST for the
    operators, then, once the motion sensor is unknown too, the same alert at medium:
    nobody can see the resident, the care worker is told; no DEVICE_LOST storm."""
    home = Home(devices=(PIR, DOOR, PLUG, GATEWAY), start=T0)
    home.silence(PIR, DOOR, PLUG, GATEWAY)
    home.run(T0 + 40 * MIN)
    assert {r.rule for r in home.raised()} == {Rule.GATEWAY_LOST}
    assert [r.priority for r in home.raised()] == [Priority.LOW, Priority.MEDIUM]


def test_a_lost_device_is_raised_once() -> None:
    """The lost verdict is given once per silence, not at every tick."""
    home = Home(start=T0)
    home.silence(SMOKE)
    home.run(T0 + 3 * 24 * 60 * MIN)
    assert len(home.raised(Rule.DEVICE_LOST)) == 1


@pytest.mark.parametrize(("readings", "raised", "cleared"), [
    ((25.0, 19.9), [19.9], False),
    ((19.0, 22.0, 24.9), [19.0], False),  # the 5-point hysteresis band does not clear
    ((19.0, 25.0), [19.0], True),
    ((19.0, 18.0, 17.0), [19.0], False),  # once while low
    ((19.0, 30.0, 15.0), [19.0, 15.0], True),
])
def test_battery_low_and_its_hysteresis(readings: tuple[float, ...], raised: list[float],
                                        cleared: bool) -> None:
    """battery_pct below 20 raises once (low, with the device); ≥ 25 clears."""
    home = Home(start=T0)
    for n, pct in enumerate(readings, 1):
        home.reading(DOOR, T0 + n * MIN, battery_pct=pct)
    rs = home.raised(Rule.BATTERY_LOW)
    assert [r.detail["battery_pct"] for r in rs] == raised
    assert all((r.priority, r.device) == (Priority.LOW, "door-1") for r in rs)
    assert bool(home.cleared(Rule.BATTERY_LOW)) == cleared


def test_battery_low_event_and_two_devices() -> None:
    """A battery_low event raises too; the clear waits for every low device."""
    home = Home(start=T0)
    home.event(SMOKE, "battery_low", T0 + MIN)
    home.reading(DOOR, T0 + 2 * MIN, battery_pct=10.0)
    assert [r.device for r in home.raised(Rule.BATTERY_LOW)] == ["smoke-1", "door-1"]
    home.reading(DOOR, T0 + 3 * MIN, battery_pct=100.0)
    assert home.cleared() == []
    home.reading(SMOKE, T0 + 4 * MIN, battery_pct=100.0)
    assert home.cleared() == [Clear(Rule.BATTERY_LOW, T0 + 4 * MIN,
                                    "battery recharged or replaced")]


def test_replayed_battery_readings_are_history() -> None:
    """A hist battery reading neither raises nor clears."""
    home = Home(start=T0)
    home.reading(DOOR, T0 - MIN, hist=True, battery_pct=5.0)
    assert home.raised() == []


def test_tamper_raises_every_time_and_never_clears() -> None:
    """tamper → Raise(TAMPER, low, device) per event; only a person resolves it."""
    home = Home(start=T0)
    home.event(SMOKE, "tamper", T0 + MIN)
    home.event(SMOKE, "tamper", T0 + 2 * MIN)
    home.run(T0 + 60 * MIN)
    assert home.raised() == [
        Raise(Rule.TAMPER, Priority.LOW, T0 + n * MIN, device="smoke-1",
              detail={"device": "smoke-1"}) for n in (1, 2)]
    assert home.cleared() == []


def test_unknown_device_changes_nothing() -> None:
    """A message from a device not in the home's configuration is ignored."""
    home = Home(start=T0)
    before = home.state
    home.catch_up(T0 + MIN)
    before = home.state
    home.event(DeviceInfo("other", "pir", "mains", 60), "tamper", T0 + MIN)
    assert home.raised() == []
    assert home.state is before


def test_an_outbox_that_dropped_an_alarm_is_raised_once_per_increase() -> None:
    """A node's status saying its outbox evicted a life-safety event is medium (an alarm
    may be lost); the same totals again say nothing; failed writes alone are low."""
    home = Home(devices=(PIR, BUTTON), start=T0)
    home.catch_up(T0 + MIN)
    home.observe(StatusObs(BUTTON.device, "ready", 300, None, T0 + MIN, (1, 0)))
    home.observe(StatusObs(BUTTON.device, "ready", 300, None, T0 + 2 * MIN, (1, 0)))
    [r] = home.raised(Rule.OUTBOX_FAULT)
    assert (r.priority, r.device) == (Priority.MEDIUM, "btn-1")
    assert "dropped" in r.detail["reasons"][0]
    home.observe(StatusObs(BUTTON.device, "ready", 300, None, T0 + 3 * MIN, (1, 4)))
    assert [(x.priority, x.detail["werr"]) for x in home.raised(Rule.OUTBOX_FAULT)] == [
        (Priority.MEDIUM, 0), (Priority.LOW, 4)]
    home.observe(StatusObs(BUTTON.device, "ready", 300, None, T0 + 4 * MIN, None))
    assert len(home.raised(Rule.OUTBOX_FAULT)) == 2


def test_time_the_rules_could_not_hear_counts_for_no_devices_loss() -> None:
    """The rules' stream from the broker was down for ten minutes (nobody could reach the
    broker): no device is lost for that silence; each one's loss counts again from the
    return, with its own interval, and a device that stays silent is lost then."""
    home = Home(start=T0, devices=(PIR, PLUG))
    home.run(T0 + 5 * MIN)
    home.silence(PIR, PLUG)
    back = T0 + 15 * MIN  # the last heartbeats were at 5 min: overdue by far
    home.state = unheard(home.cfg, home.state, back)
    home.now = back
    home.revive(PLUG, back + 30 * S)
    home.run(back + 179 * S)
    assert home.raised(Rule.DEVICE_LOST) == []
    home.run(back + 181 * S)  # 3 x 60 s from the return: the PIR that stayed silent
    assert [r.device for r in home.raised(Rule.DEVICE_LOST)] == ["pir-1"]


# --- a home nobody can see: told again until it can be seen --------------------------------


def _blind_words(home: Home) -> list[Raise]:
    return [r for r in home.raised() if "unwatched_h" in r.detail]


def test_a_blind_home_is_told_again_at_most_a_day_apart() -> None:
    """The home's only motion sensor dies (a flat battery nobody replaced): its medium
    DEVICE_LOST, then the same alert told again while nobody can see the resident, each
    time with a higher tier (news) and the hours unseen, never more than a day apart, so
    a resident who falls on the 13th day is checked on within a day. Never an inactivity
    verdict."""
    home = Home(devices=PIR_ONLY, start=T0)
    home.silence(PIR)
    home.run(T0 + 14 * DAY)
    first, *again = home.raised(Rule.DEVICE_LOST)
    assert (first.priority, first.at_ms) == (Priority.MEDIUM, T0 + 3 * MIN)
    assert len(again) >= 14
    assert again == _blind_words(home)
    times = [first.at_ms, *(r.at_ms for r in again)]
    assert max(b - a for a, b in pairwise(times)) <= DAY
    assert again[0].at_ms - T0 >= 12 * H  # not on the heels of the first word
    tiers = [int(str(r.detail["tier"])) for r in again]
    assert tiers == sorted(set(tiers)) and tiers[0] >= 2
    for r in again:
        assert (r.device, r.priority) == ("pir-1", Priority.MEDIUM)
        assert r.detail["unwatched_h"] == (r.at_ms - T0) // H
    assert home.raised(Rule.INACTIVITY) == []
    assert home.raised(Rule.WELFARE_CONCERN) == []


def test_the_word_stops_when_the_home_can_see_again() -> None:
    """The battery is replaced on the third day: the alert clears and nothing more is told;
    the silence counts from the sensor's return, not from before."""
    home = Home(devices=PIR_ONLY, start=T0)
    home.silence(PIR)
    home.run(T0 + 2 * DAY + 3 * H)
    told = len(_blind_words(home))
    assert told >= 2
    back = T0 + 2 * DAY + 4 * H
    home.revive(PIR, back)
    assert [c.rule for c in home.cleared()] == [Rule.DEVICE_LOST]
    home.activity(PIR, back + MIN)
    home.run(back + 5 * DAY)
    assert len(_blind_words(home)) == told


def test_a_second_motion_sensor_that_works_means_no_word() -> None:
    """One of two motion sensors dies: the home can still see the resident; its low
    DEVICE_LOST is said once."""
    pir2 = DeviceInfo("pir-2", "pir", "mains", 60)
    home = Home(devices=(PIR, pir2, BUTTON), start=T0)
    home.silence(PIR)
    for t in range(T0, T0 + 5 * DAY, H):  # the resident moves about before pir-2
        home.activity(pir2, t)
    home.run(T0 + 5 * DAY)
    assert [(r.device, r.priority) for r in home.raised(Rule.DEVICE_LOST)] == [
        ("pir-1", Priority.LOW)]


def test_a_blind_home_in_hospital_mode_is_not_told_again() -> None:
    """The resident is in hospital (the system was told): nobody to see at home."""
    home = Home(devices=PIR_ONLY, start=T0, mode="hospital")
    home.silence(PIR)
    home.run(T0 + 4 * DAY)
    assert _blind_words(home) == []
    assert len(home.raised(Rule.DEVICE_LOST)) == 1


def test_a_home_blind_behind_its_lost_gateway_is_told_again_as_the_gateway() -> None:
    """The home's link is down for days: the gateway's alert, at medium, is told again,
    naming the gateway, until the gateway is heard; then the plug that came back with it
    is simply heard and nothing more is told."""
    home = Home(devices=(PIR, PLUG, BUTTON, GATEWAY), start=T0)
    home.silence(PIR, PLUG, BUTTON, GATEWAY)
    home.run(T0 + 3 * DAY)
    words = _blind_words(home)
    assert len(words) >= 3
    assert {(r.rule, r.device) for r in words} == {(Rule.GATEWAY_LOST, "gw-1")}
    assert home.raised(Rule.DEVICE_LOST) == []
    back = T0 + 3 * DAY + MIN
    home.revive(GATEWAY, back)
    home.revive(PIR, back + S)
    home.revive(PLUG, back + 2 * S)
    home.revive(BUTTON, back + 3 * S)
    home.activity(PIR, back + MIN)
    home.run(back + 3 * DAY)
    assert len(_blind_words(home)) == len(words)
    assert home.raised(Rule.DEVICE_LOST) == []


def test_a_blind_home_put_in_hospital_mode_goes_quiet_and_time_still_moves() -> None:
    """The home went blind, then the resident went to hospital (the system was told): no
    more words, and the engine's timers still move on (this once looped for ever)."""
    home = Home(devices=PIR_ONLY, start=T0)
    home.silence(PIR)
    home.run(T0 + DAY + 12 * H)
    told = len(_blind_words(home))
    assert told >= 1
    home.set_mode("hospital")
    home.run(T0 + 5 * DAY)
    assert len(_blind_words(home)) == told
