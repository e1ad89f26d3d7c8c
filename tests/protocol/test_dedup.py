"""Dedup by (dev, boot, seq)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dolbom.protocol.dedup import DUPLICATE, NEW, WINDOW, Deduper, check
from dolbom.protocol.messages import MAX_INT


def test_repeats_are_seen() -> None:
    """The same (dev, boot, seq) is new once, then a duplicate however often it comes back."""
    d = Deduper()
    assert not d.seen("a", 1, 5)
    assert d.seen("a", 1, 5)
    assert d.seen("a", 1, 5)
    assert not d.seen("b", 1, 5)  # another device


def test_out_of_order_within_window() -> None:
    """Late messages inside the window are new once; a reboot starts a new sequence."""
    d = Deduper()
    for s in (1, 3, 2, 10):
        assert not d.seen("a", 1, s)
    assert d.seen("a", 1, 2)
    assert not d.seen("a", 2, 1)  # boot 2, seq restarts
    assert d.seen("a", 2, 1)


@given(st.lists(st.integers(0, WINDOW - 1), max_size=200))
def test_matches_a_set_within_the_window(seqs: list[int]) -> None:
    """Within one boot and the window, Deduper answers exactly like a set."""
    d, ref = Deduper(), set()
    for s in seqs:
        assert d.seen("x", 7, s) == (s in ref)
        ref.add(s)


def test_older_than_window_is_accepted_not_dropped() -> None:
    """Backlog far behind the live sequence is stored rather than mistaken for a duplicate."""
    d = Deduper()
    assert not d.seen("a", 1, 10_000)
    assert not d.seen("a", 1, 10)  # replayed backlog from long ago
    assert not d.seen("a", 0, 5)  # and from an earlier boot


class _Reference:
    """The window as it is specified: per device the boot, the high-water mark and a
    bitmap of the ``WINDOW`` seqs below it, kept apart (not packed)."""

    def __init__(self) -> None:
        self.state: dict[str, tuple[int, int, int]] = {}

    def seen(self, device: str, boot: int, seq: int) -> bool:
        cur = self.state.get(device)
        if cur is None or boot > cur[0]:
            self.state[device] = (boot, seq, 1)
            return False
        cur_boot, hwm, bitmap = cur
        if boot < cur_boot:
            return False
        if seq > hwm:
            shift = seq - hwm
            bitmap = ((bitmap << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            self.state[device] = (boot, seq, bitmap)
            return False
        if hwm - seq >= WINDOW:
            return False
        if bitmap >> (hwm - seq) & 1:
            return True
        self.state[device] = (boot, hwm, bitmap | 1 << (hwm - seq))
        return False


_messages = st.lists(st.tuples(st.sampled_from("ab"), st.integers(0, 3),
                               st.one_of(st.integers(0, 600), st.integers(MAX_INT - 600, MAX_INT))),
                     max_size=300)


@given(_messages)
def test_matches_the_reference_window(messages: list[tuple[str, int, int]]) -> None:
    """Boots, gaps, reordering, repeats and seqs at the contract's bound: the packed state
    answers like the plain (boot, high-water mark, bitmap) window."""
    d, ref = Deduper(), _Reference()
    for device, boot, seq in messages:
        assert d.seen(device, boot, seq) == ref.seen(device, boot, seq)


@given(st.lists(st.integers(1, 3), min_size=1, max_size=700))
def test_in_order_runs_match_the_reference(steps: list[int]) -> None:
    """Mostly in order (the fast path), now and then a gap, then the gap's late seqs."""
    d, ref = Deduper(), _Reference()
    seq = 0
    for step in steps:
        seq += step
        for s in (seq, seq - 1, seq):
            assert d.seen("a", 5, s) == ref.seen("a", 5, s)


def test_an_in_order_device_keeps_a_small_state() -> None:
    """A device that sends in order has no bitmap beyond its run: under 120 bits (40 B)
    whatever its boot and seq, after a few messages as after thousands."""
    state = NEW
    for seq in range(1, 3000):
        state = check(state, MAX_INT, MAX_INT - 3000 + seq)
        assert state != DUPLICATE and state.bit_length() <= 120
    assert check(state, MAX_INT, MAX_INT - 1) == DUPLICATE


def test_values_outside_the_contract_are_refused() -> None:
    d = Deduper()
    for boot, seq in ((MAX_INT + 1, 1), (1, MAX_INT + 1), (-1, 1), (1, -1)):
        with pytest.raises(ValueError):
            d.seen("a", boot, seq)
