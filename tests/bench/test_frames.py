"""The load generator's pre-encoded frames follow the wire contract (DESIGN.md §3)."""

from __future__ import annotations

import time

import pytest

from dolbom.bench.fleet import Fleet, MsgType, message_type, mix32, overall_mix
from dolbom.bench.frames import TS_PLACEHOLDER, Encoder, StepPlan, iter_frames, stamp
from dolbom.mqtt import packets
from dolbom.protocol import Event, Status, Telemetry, Topics, decode


def _decoded(encoder: Encoder, plan: StepPlan, second: int) -> list[tuple[int, int, object]]:
    step = encoder.encode(plan)
    topics = Topics()
    out = []
    for k, slices in enumerate(step.chunks):
        for per_conn in slices:
            for conn, chunk in enumerate(per_conn):
                for header, topic, pid, payload in iter_frames(stamp(chunk, second + k)):
                    parsed = topics.parse(topic)
                    assert parsed is not None, topic
                    out.append((conn, pid, (header, decode(parsed, payload))))
    return out


def test_every_frame_is_a_valid_unique_now_stamped_message() -> None:
    """Each frame decodes as v1, (dev, boot, seq) never repeats, ts is the step's time, tq 2."""
    fleet = Fleet(homes=20)  # 120 devices: at 500 msg/s each device sends ~4 times a second
    enc = Encoder(fleet, boot=7, connections=3)
    now = int(time.time())
    frames = _decoded(enc, StepPlan(500, 2, 0, 3, 10), now)
    assert len(frames) == 1000
    keys = set()
    per_dev_ts: dict[str, list[int]] = {}
    for _, _, (header, msg) in frames:
        if isinstance(msg, Status):
            assert header & 0x01 and (header >> 1) & 3 == 1  # retained, QoS 1
            continue
        assert isinstance(msg, Event | Telemetry)
        assert msg.env.tq == 2 and msg.env.boot == 7
        assert now * 1000 <= msg.env.ts < (now + 2) * 1000
        keys.add((msg.topic.device, msg.env.boot, msg.env.seq))
        per_dev_ts.setdefault(msg.topic.device, []).append(msg.env.ts)
    n_status = sum(isinstance(m, Status) for _, _, (_, m) in frames)
    assert len(keys) == 1000 - n_status
    for ts in per_dev_ts.values():  # one device never sends twice in a ms: points never collide
        assert len(ts) == len(set(ts))


def test_seq_continues_across_steps_and_pids_cycle_per_connection() -> None:
    """A second step goes on where the first stopped; packet ids are consecutive per connection."""
    fleet = Fleet(homes=10)
    enc = Encoder(fleet, connections=2)
    first = _decoded(enc, StepPlan(120, 1, 0, 2), 1_800_000_000)
    second = _decoded(enc, StepPlan(120, 1, 120, 2), 1_800_000_001)
    seqs = {}
    for _, _, (_, m) in first + second:
        if isinstance(m, Telemetry | Event):
            seqs.setdefault(m.topic.device, []).append(m.env.seq)
    for s in seqs.values():
        assert s == sorted(s) and len(set(s)) == len(s)
    for conn in (0, 1):
        pids = [pid for c, pid, _ in first + second if c == conn]
        assert pids == list(range(1, len(pids) + 1))


def test_telemetry_qos0_frames_have_no_packet_id() -> None:
    enc = Encoder(Fleet(homes=5), telemetry_qos=0, connections=1)
    for _, pid, (header, msg) in _decoded(enc, StepPlan(60, 1, 0, 1), 1_800_000_000):
        if isinstance(msg, Telemetry):
            assert header == packets.PUBLISH and pid == 0
        else:
            assert (header >> 1) & 3 == 1 and pid > 0


def test_unstamped_chunk_is_not_valid_json() -> None:
    """Forgetting to stamp can never pass as a valid message: 0000000000123 is not JSON."""
    enc = Encoder(Fleet(homes=1), connections=1)
    chunk = enc.encode(StepPlan(6, 1, 0, 1, 1)).chunks[0][0][0]
    assert TS_PLACEHOLDER in chunk
    assert TS_PLACEHOLDER not in stamp(chunk, 1_800_000_000)


def test_mix_is_the_documented_one() -> None:
    """Counts over a whole fleet round follow the documented shares (fleet.py docstring)."""
    mix = overall_mix()
    assert mix == pytest.approx({"telemetry": 0.88, "motion": 0.07, "door": 0.025, "bed": 0.02,
                                 "status": 0.005})
    fleet = Fleet(homes=20_000)
    step = Encoder(fleet, connections=1).encode(StepPlan(60_000, 2, 0, 1, 1))
    total = step.plan.messages
    for name, share in mix.items():
        assert step.per_type[name] / total == pytest.approx(share, abs=0.003), name
    assert sum(step.per_measurement.values()) == total


@pytest.mark.parametrize("rnd", range(3))
def test_message_type_is_deterministic(rnd: int) -> None:
    fleet = Fleet(homes=3)
    for dev in range(fleet.devices):
        kind = fleet.kind_of(dev)
        t = message_type(kind, mix32(dev, rnd))
        assert t is message_type(kind, mix32(dev, rnd))
        if kind.event is None:
            assert t is not MsgType.EVENT
