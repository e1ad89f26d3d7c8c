"""When a broker's growing backlog raises its alert, and when it clears: the pure decision
over the broker's ``$SYS`` figures, on a moved clock (docs/scale.md)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dolbom.brokerwatch.backlog import (
    MAX_BUCKETS,
    SYS_BYTES,
    SYS_RETAINED,
    SYS_STORED,
    BacklogPolicy,
    BacklogTrend,
    SysFigures,
    Verdict,
    parse_figure,
)
from dolbom.brokerwatch.backlog_watch import BacklogOptions

POLICY = BacklogPolicy(threshold=1_000, sustain_s=300, min_growth=200, clear_below=500,
                       repeat_s=600)


def feed(trend: BacklogTrend, samples: list[tuple[float, int]]) -> list[tuple[float, Verdict]]:
    out = []
    for at, held in samples:
        r = trend.observe(at, held)
        if r is not None:
            out.append((at, r.verdict))
    return out


def growing(start: float, until: float, base: int, per_s: float,
            step: float = 10) -> list[tuple[float, int]]:
    """A dead session's queue: one sample per sys_interval, always higher."""
    n = int((until - start) / step)
    return [(start + i * step, base + int(i * step * per_s)) for i in range(n + 1)]


# -- the figures -----------------------------------------------------------------------


def test_figures_take_counts_and_held_is_stored_less_retained() -> None:
    f = SysFigures()
    assert f.held is None
    assert f.update(SYS_STORED, b"503")
    assert f.held is None  # the retained count not seen yet
    assert f.update(SYS_RETAINED, b"103")
    assert f.update(SYS_BYTES, b"41110")
    assert (f.stored, f.retained, f.stored_bytes, f.held) == (503, 103, 41110, 400)
    # published a moment apart: the retained count can be ahead of the store's
    assert f.update(SYS_RETAINED, b"600")
    assert f.held == 0


@pytest.mark.parametrize("payload", [b"", b"-1", b"1.5", b" 12", b"12\n", b"abc",
                                     b"9" * 21, "١٢".encode()])
def test_a_payload_that_is_not_a_count_is_refused(payload: bytes) -> None:
    f = SysFigures()
    assert parse_figure(payload) is None
    assert not f.update(SYS_STORED, payload)
    assert f.stored is None


def test_other_topics_are_not_figures() -> None:
    f = SysFigures()
    assert not f.update("$SYS/broker/uptime", b"12")
    assert not f.update("care/v1/s/d/telemetry", b"12")
    assert f == SysFigures()


# -- the policy --------------------------------------------------------------------------


@pytest.mark.parametrize("kw", [
    {"threshold": 0}, {"min_growth": 0}, {"clear_below": 1_000}, {"clear_below": -1},
    {"sustain_s": 0}, {"sustain_s": float("nan")}, {"repeat_s": -5},
    {"repeat_s": float("inf")},
])
def test_a_policy_that_cannot_work_is_refused(kw: dict[str, float]) -> None:
    base = dict(threshold=1_000, sustain_s=300, min_growth=200, clear_below=500,
                repeat_s=600)
    with pytest.raises(ValueError, match="backlog"):
        BacklogPolicy(**{**base, **kw})  # type: ignore[arg-type]


def test_options_default_and_validate() -> None:
    o = BacklogOptions()
    assert o.policy == BacklogPolicy(10_000, 120.0, 1_000, 5_000, 600.0)
    assert o.mqtt_client_id == "dolbom-backlog-default"
    assert BacklogOptions(threshold=100).policy.clear_below == 50
    with pytest.raises(ValidationError, match=r"clear_below \(100\) must be below"):
        BacklogOptions(threshold=100, clear_below=100)
    with pytest.raises(ValidationError, match="cell"):
        BacklogOptions(cell="Cell A")
    with pytest.raises(ValidationError, match="sustain_s"):
        BacklogOptions(sustain_s=0)


# -- the trend -------------------------------------------------------------------------


def test_a_queue_growing_for_sustain_s_raises_once_then_repeats_then_clears() -> None:
    t = BacklogTrend(POLICY)
    # above the threshold from the start, growing 5 a second: 300 s later, raise
    raised = feed(t, growing(0, 290, 1_000, 5))
    assert raised == []
    r = t.observe(300, 2_500)
    assert r is not None and r.verdict is Verdict.RAISE
    assert (r.held, r.growth, r.since) == (2_500, 1_500, 0)
    assert t.raised
    # it keeps growing: no second alert, one refresh every repeat_s
    later = feed(t, growing(310, 2_000, 2_550, 5))
    assert later == [(900, Verdict.REPEAT), (1_500, Verdict.REPEAT)]
    # drains: above clear_below nothing yet, below it cleared
    assert t.observe(2_010, 600) is None
    c = t.observe(2_020, 499)
    assert c is not None and c.verdict is Verdict.CLEAR and c.since == 300
    assert not t.raised
    assert t.observe(2_030, 0) is None


def test_not_before_sustain_s_nor_below_the_threshold_nor_with_little_growth() -> None:
    # growing fast, but watched for less than sustain_s
    assert feed(BacklogTrend(POLICY), growing(0, 290, 5_000, 100)) == []
    # growing for an hour, but under the threshold all along
    assert feed(BacklogTrend(POLICY), growing(0, 3_600, 0, 0.27)) == []
    # over the threshold for an hour, but growing less than min_growth in any 300 s
    assert feed(BacklogTrend(POLICY), growing(0, 3_600, 5_000, 0.6)) == []
    # crossing the threshold: the 300 s start when the window's start is above it
    out = feed(BacklogTrend(POLICY), growing(0, 3_600, 0, 5))
    assert out[0] == (500, Verdict.RAISE)  # 1,000 reached at 200 s


def test_a_count_that_rises_and_falls_raises_nothing() -> None:
    """Live workers' in-flight messages: high, moving, and back down now and then."""
    ripple = [0, 400, 900, 300, 1_200, 700, 100, 1_500, 800, 200]
    samples = [(i * 10.0, 8_000 + ripple[i % len(ripple)]) for i in range(720)]
    assert feed(BacklogTrend(POLICY), samples) == []


def test_a_fall_below_the_windows_start_restarts_the_wait() -> None:
    t = BacklogTrend(POLICY)
    feed(t, growing(0, 200, 2_000, 5))
    assert t.observe(210, 1_900) is None  # back under where it was at 0 s
    assert feed(t, growing(220, 500, 3_000, 5)) == []  # at 300 s: not since 0 s
    r = t.observe(510, 4_500)  # 300 s after the fall, which starts the window
    assert r is not None and r.verdict is Verdict.RAISE and r.since == 210


def test_found_open_at_start_it_clears_when_drained() -> None:
    t = BacklogTrend(POLICY, raised=True)
    # already open: no raise, its figures refreshed at once and every repeat_s
    assert feed(t, growing(0, 700, 50_000, 50)) == [(0, Verdict.REPEAT), (600, Verdict.REPEAT)]
    c = t.observe(710, 10)
    assert c is not None and c.verdict is Verdict.CLEAR


def test_a_failed_store_is_tried_again_at_the_next_sample() -> None:
    t = BacklogTrend(POLICY)
    feed(t, growing(0, 290, 1_000, 5))
    r = t.observe(300, 2_500)
    assert r is not None and r.verdict is Verdict.RAISE
    t.failed(r)
    r2 = t.observe(310, 2_550)
    assert r2 is not None and r2.verdict is Verdict.RAISE
    c = t.observe(320, 10)
    assert c is not None and c.verdict is Verdict.CLEAR
    t.failed(c)
    c2 = t.observe(330, 10)
    assert c2 is not None and c2.verdict is Verdict.CLEAR


def test_reset_and_a_clock_going_back_start_the_window_again() -> None:
    t = BacklogTrend(POLICY)
    feed(t, growing(0, 290, 1_000, 5))
    t.reset()  # the connection was lost
    assert feed(t, growing(300, 590, 3_000, 5)) == []
    assert t.observe(600, 4_500) is not None
    t2 = BacklogTrend(POLICY)
    feed(t2, growing(1_000, 1_290, 1_000, 5))
    assert t2.observe(500, 9_000) is None  # back in time: only this sample is left
    assert t2.observe(790, 9_100) is None
    r = t2.observe(800, 9_200)
    assert r is not None and r.verdict is Verdict.RAISE and r.since == 500


def test_memory_is_bounded_whatever_the_sample_rate() -> None:
    t = BacklogTrend(POLICY)
    out = feed(t, [(i * 0.01, 1_000 + i) for i in range(100_000)])  # 100 samples a second
    assert len(t._buckets) <= MAX_BUCKETS
    assert out[0][1] is Verdict.RAISE and 300 <= out[0][0] <= 305
