"""Dedup by (dev, boot, seq)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dolbom.protocol.dedup import WINDOW, Deduper


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
