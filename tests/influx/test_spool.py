"""The disk spool: durable, ordered, bounded for telemetry, never dropping events."""

from __future__ import annotations

from pathlib import Path

from dolbom.influx.spool import Spool


def test_replays_events_first_then_oldest(tmp_path: Path) -> None:
    """Events come back before telemetry, each oldest first, and survive a restart."""
    s = Spool(tmp_path, 10_000)
    s.put([b"t1"], event=False)
    s.put([b"e1", b"e2"], event=True)
    s.put([b"t2"], event=False)
    s2 = Spool(tmp_path, 10_000)  # as after a crash
    order = []
    while (f := s2.oldest()) is not None:
        order.append(s2.read(f))
        s2.done(f)
    assert order == [[b"e1", b"e2"], [b"t1"], [b"t2"]]
    assert s2.empty


def test_telemetry_capped_events_never_dropped(tmp_path: Path) -> None:
    """Past the cap the oldest telemetry is dropped and counted; events all stay."""
    s = Spool(tmp_path, max_telemetry_bytes=100)
    for i in range(10):
        s.put([f"reading v={i} {i}".encode()] * 2, event=False)
        s.put([f"event v={i} {i}".encode()] * 5, event=True)
    assert s.dropped_points > 0
    kept = []
    events = 0
    while (f := s.oldest()) is not None:
        if f.event:
            events += len(s.read(f))
        else:
            kept.extend(s.read(f))
        s.done(f)
    assert events == 50
    assert len(kept) + s.dropped_points == 20
    assert kept[-1] == b"reading v=9 9"  # the newest telemetry is what survives


def test_interrupted_write_leaves_nothing(tmp_path: Path) -> None:
    """A half-written temp file from a crash is discarded, never replayed."""
    s = Spool(tmp_path, 1000)
    (tmp_path / "events" / "000000000099.tmp").write_bytes(b"half")
    assert Spool(tmp_path, 1000).oldest() is None
    assert not list((tmp_path / "events").iterdir())
    assert s.empty
