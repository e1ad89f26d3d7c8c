"""Payload validation of wire contract v1: tables for the rules, properties for robustness."""

from __future__ import annotations

import contextlib
import math
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dolbom.protocol import (
    EVENT_TYPES,
    READINGS,
    DecodeError,
    Envelope,
    Event,
    Kind,
    Reason,
    Sample,
    Status,
    Telemetry,
    Topic,
    decode,
    effective_ts,
    encode_ack,
    encode_batch,
    encode_event,
    encode_status,
    encode_telemetry,
)
from dolbom.protocol.messages import RAW_RETENTION_MS, device_time_plausible, point_ts

EV = Topic(Kind.EVENT, "s1", "d1", "button")
DOOR = Topic(Kind.EVENT, "s1", "d1", "door")
TEL = Topic(Kind.TELEMETRY, "s1", "d1")
STA = Topic(Kind.STATUS, "s1", "d1")
ENV = {"v": 1, "boot": 17, "seq": 1234, "ts": 1763700000123, "tq": 2}


def j(**kw: Any) -> bytes:
    return orjson.dumps({**ENV, **kw})


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (EV, b"\xff\xfe", Reason.NOT_UTF8),
        (EV, b"{not json", Reason.NOT_JSON),
        (EV, b"[1,2]", Reason.NOT_OBJECT),
        (EV, b"x" * 70_000, Reason.TOO_LARGE),
        (EV, orjson.dumps({**ENV, "v": 2}), Reason.BAD_VERSION),
        (EV, orjson.dumps({**ENV, "v": True}), Reason.BAD_VERSION),
        (EV, orjson.dumps({k: v for k, v in ENV.items() if k != "seq"}), Reason.MISSING_FIELD),
        (EV, j(seq=-1), Reason.BAD_FIELD),
        (EV, j(seq=1.5), Reason.BAD_FIELD),
        (EV, j(boot=True), Reason.BAD_FIELD),
        (EV, j(tq=3), Reason.BAD_FIELD),
        (EV, j(ts=9_999_999_999_999), Reason.BAD_FIELD),
        (EV, j(hist="yes"), Reason.BAD_FIELD),
        (DOOR, j(val="ajar"), Reason.BAD_FIELD),
        (DOOR, j(), Reason.BAD_FIELD),
        (Topic(Kind.EVENT, "s1", "d1", "explosion"), j(), Reason.UNKNOWN_EVENT_TYPE),
        (TEL, j(), Reason.MISSING_FIELD),
        (TEL, j(readings=[1]), Reason.BAD_FIELD),
        (TEL, j(readings={"temperature_c": "hot"}), Reason.BAD_READING),
        (TEL, j(readings={"temperature_c": True}), Reason.BAD_READING),
        (TEL, j(batch=[]), Reason.BAD_FIELD),
        (TEL, j(batch=[{"ts": 1}]), Reason.MISSING_FIELD),
        (TEL, j(batch=[{"readings": {}}]), Reason.MISSING_FIELD),
        (STA, orjson.dumps({"state": "asleep"}), Reason.BAD_STATE),
        (STA, orjson.dumps({"state": "ready", "hb": 0}), Reason.BAD_FIELD),
        (Topic(Kind.ACK, "s1", "d1"), b'{"boot":1}', Reason.MISSING_FIELD),
    ],
)
def test_rejections_have_reasons(topic: Topic, payload: bytes, reason: Reason) -> None:
    """Each way a message can break the contract is refused with its own reason code."""
    with pytest.raises(DecodeError) as e:
        decode(topic, payload)
    assert e.value.reason is reason


def test_event_fields() -> None:
    """A valid event decodes to its envelope, type and value; life-safety is known."""
    m = decode(DOOR, j(val="open", hist=True))
    assert isinstance(m, Event)
    assert m.env == Envelope(17, 1234, 1763700000123, 2, True)
    assert (m.type, m.val, m.life_safety) == ("door", "open", False)
    assert isinstance(b := decode(EV, j()), Event) and b.life_safety


def test_unknown_fields_and_readings_ignored() -> None:
    """Unknown extra fields and reading names are ignored; null readings are skipped."""
    m = decode(TEL, j(extra={"x": 1}, readings={"temperature_c": 21, "co2_ppm": 400,
                                                "humidity_pct": None}))
    assert isinstance(m, Telemetry)
    assert m.samples == (Sample(ENV["ts"], {"temperature_c": 21.0}),)


def test_batch_telemetry() -> None:
    """A batch keeps each sample's own time."""
    m = decode(TEL, j(batch=[{"ts": 1, "readings": {"battery_pct": 80}},
                             {"ts": 2, "readings": {"battery_pct": 79.5}}]))
    assert isinstance(m, Telemetry)
    assert [s.ts for s in m.samples] == [1, 2]


def test_lost_will_status_is_minimal() -> None:
    """The Last Will `{"state":"lost"}` alone is a valid status."""
    m = decode(STA, b'{"state":"lost"}')
    assert m == Status(STA, "lost")


@given(st.binary(max_size=300), st.sampled_from([EV, DOOR, TEL, STA,
                                                 Topic(Kind.ACK, "s", "d"),
                                                 Topic(Kind.CMD, "s", "d", "ping")]))
def test_decode_arbitrary_bytes_never_raises_other(payload: bytes, topic: Topic) -> None:
    """Decoding arbitrary bytes never raises anything but DecodeError."""
    with contextlib.suppress(DecodeError):
        decode(topic, payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(), c, max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.text(max_size=8), json_values, max_size=8))
def test_decode_arbitrary_json_objects_never_raises_other(obj: dict[str, Any]) -> None:
    """Arbitrary JSON objects (merged over a valid envelope) never crash the decoder."""
    for topic in (EV, DOOR, TEL, STA):
        with contextlib.suppress(DecodeError):
            decode(topic, orjson.dumps({**ENV, **obj}))


envs = st.builds(Envelope, boot=st.integers(0, 2**31), seq=st.integers(0, 2**40),
                 ts=st.integers(0, 4_102_444_800_000), tq=st.integers(0, 2), hist=st.booleans())
readings = st.dictionaries(
    st.sampled_from(sorted(READINGS)),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
    max_size=8,
)
extra = st.dictionaries(st.text(max_size=6).filter(
    lambda k: k not in {"v", "boot", "seq", "ts", "tq", "hist", "val", "readings", "batch"}),
    json_values, max_size=3)


@given(envs, readings, extra)
def test_telemetry_round_trip(env: Envelope, r: dict[str, float], ex: dict[str, Any]) -> None:
    """Every valid telemetry message round-trips, with unknown extra fields ignored."""
    payload = orjson.loads(encode_telemetry(env, r))
    payload.update(ex)
    m = decode(TEL, orjson.dumps(payload))
    assert isinstance(m, Telemetry)
    assert m.env == env and m.samples == (Sample(env.ts, r),)


@given(envs, st.sampled_from(sorted(EVENT_TYPES)),
       st.none() | st.text(max_size=64) | st.integers(-2**53 + 1, 2**53 - 1) | st.booleans(),
       extra)
def test_event_round_trip(env: Envelope, etype: str, val: Any, ex: dict[str, Any]) -> None:
    """Every valid event round-trips."""
    if etype == "door":
        val = "closed"
    elif etype == "bed":
        val = "in"
    topic = Topic(Kind.EVENT, "s", "d", etype)
    payload = orjson.loads(encode_event(env, val))
    payload.update(ex)
    m = decode(topic, orjson.dumps(payload))
    assert m == Event(topic, env, val)


@given(envs, st.lists(st.tuples(st.integers(0, 4_102_444_800_000), readings), min_size=1,
                      max_size=5))
def test_batch_round_trip(env: Envelope, items: list[tuple[int, dict[str, float]]]) -> None:
    """Batches round-trip sample by sample."""
    samples = [Sample(ts, r) for ts, r in items]
    m = decode(TEL, encode_batch(env, samples))
    assert isinstance(m, Telemetry) and list(m.samples) == samples


@given(st.sampled_from(["ready", "sleeping", "disconnected", "lost"]),
       st.none() | st.integers(0, 10**6), st.none() | st.integers(1, 86_400),
       st.none() | st.integers(1, 7 * 86_400))
def test_status_round_trip(state: str, boot: int | None, hb: int | None, nxt: int | None) -> None:
    """Statuses round-trip."""
    m = decode(STA, encode_status(state, boot=boot, fw="1.2.0", kind="door", hb=hb, next=nxt))
    assert m == Status(STA, state, boot, "1.2.0", "door", hb, nxt)


def test_ack_round_trip() -> None:
    """Acks carry the (boot, seq) being acknowledged."""
    m = decode(Topic(Kind.ACK, "s", "d"), encode_ack(3, 99))
    assert (m.boot, m.seq) == (3, 99)  # type: ignore[union-attr]


NOW = 1_763_700_000_000


@pytest.mark.parametrize(
    ("env", "sample_ts", "expected"),
    [
        (Envelope(1, 1, NOW - 1000, 2), NOW - 1000, NOW - 1000),  # synced, close: device time
        (Envelope(1, 1, NOW - 60_000, 2), NOW - 60_000, NOW),  # synced but 60 s off: ours
        (Envelope(1, 1, NOW - 1000, 1), NOW - 1000, NOW),  # RTC only: ours
        (Envelope(1, 1, 5_000, 0), 5_000, NOW),  # unsynced: ours
        (Envelope(1, 1, 5_000, 0), 4_000, NOW - 1000),  # unsynced batch: ours minus offset
        (Envelope(1, 1, NOW - 3_600_000, 2, hist=True), NOW - 3_600_000, NOW - 3_600_000),
        (Envelope(1, 1, NOW + 3_600_000, 2, hist=True), NOW + 3_600_000, NOW),  # future: ours
    ],
)
def test_effective_ts(env: Envelope, sample_ts: int, expected: int) -> None:
    """The stored time follows DESIGN.md §3: device time only when trustworthy."""
    assert effective_ts(env, sample_ts, NOW) == expected


DAY = 86_400_000


@pytest.mark.parametrize(
    ("env", "plausible"),
    [
        (Envelope(1, 1, NOW, 2), True),
        (Envelope(1, 1, NOW + 5_000, 2), True),  # 5 s ahead: tolerated
        (Envelope(1, 1, NOW + 5_001, 2), False),  # further ahead: ours
        (Envelope(1, 1, NOW + 3_600_000, 2, hist=True), False),
        (Envelope(1, 1, NOW - 600_000, 2), True),  # a late re-send keeps its device time
        (Envelope(1, 1, NOW - 30 * DAY, 2, hist=True), True),
        (Envelope(1, 1, NOW - RAW_RETENTION_MS, 2), True),
        (Envelope(1, 1, NOW - RAW_RETENTION_MS - 1, 2), False),  # past the retention
        (Envelope(1, 1, 0, 2), False),  # 1970
        (Envelope(1, 1, NOW, 1), False),  # RTC only
        (Envelope(1, 1, NOW, 0), False),  # unsynced
    ],
)
def test_device_time_plausible(env: Envelope, plausible: bool) -> None:
    """Device time is used only when NTP-synced, at most 5 s ahead and within the retention."""
    assert device_time_plausible(env, NOW) is plausible


def test_device_time_plausible_retention_is_a_parameter() -> None:
    """The age limit follows the retention it is given (ingest passes its setting)."""
    env = Envelope(1, 1, NOW - 2 * DAY, 2)
    assert device_time_plausible(env, NOW, max_age_ms=3 * DAY)
    assert not device_time_plausible(env, NOW, max_age_ms=DAY)


def test_point_ts_keeps_each_samples_offset() -> None:
    """A sample's time is the message's base time plus the sample's offset in the message."""
    env = Envelope(1, 1, 100_000, 0)
    assert [point_ts(env, ts, NOW) for ts in (40_000, 100_000)] == [NOW - 60_000, NOW]
    assert point_ts(env, 40_000, env.ts) == 40_000


def test_non_finite_reading_refused() -> None:
    """NaN/Infinity never reach InfluxDB (orjson refuses them on the wire anyway)."""
    with pytest.raises(DecodeError):
        decode(TEL, j(readings={"temperature_c": "NaN"}))
    assert not math.isnan(1.0)


def test_status_outbox_health_decoded() -> None:
    """A status's "ob" becomes Status.outbox; missing counters are 0, unknown ones and
    other extras are ignored, and a status without "ob" has outbox None."""
    from dolbom.protocol import OutboxHealth

    s = decode(STA, orjson.dumps({"state": "ready", "boot": 3, "ob": {
        "depth": 2, "evicted": 1, "merged": 4, "werr": 7, "future": 9}, "extra": 1}))
    assert isinstance(s, Status)
    assert s.outbox == OutboxHealth(depth=2, evicted=1, merged=4, werr=7)
    s = decode(STA, orjson.dumps({"state": "ready", "ob": {"werr": 1}}))
    assert isinstance(s, Status) and s.outbox == OutboxHealth(werr=1)
    for payload in ({"state": "ready"}, {"state": "lost", "ob": None}):
        s = decode(STA, orjson.dumps(payload))
        assert isinstance(s, Status) and s.outbox is None


@pytest.mark.parametrize(
    "ob",
    [
        [1, 2],
        "evicted",
        {"evicted": -1},
        {"werr": 1.5},
        {"merged": True},
        {"evicted": "3"},
        {"werr": None},
        {"depth": 65_536},
        {"evicted": 2**32},
    ],
)
def test_status_with_a_bad_outbox_health_refused(ob: object) -> None:
    """A bad "ob" (not an object; a counter negative, not an integer or out of range)
    refuses the status with bad_field naming the field: a broken counter never passes
    for a healthy outbox."""
    with pytest.raises(DecodeError) as e:
        decode(STA, orjson.dumps({"state": "ready", "ob": ob}))
    assert e.value.reason is Reason.BAD_FIELD and "'ob" in e.value.detail


def test_status_outbox_health_round_trips_through_encode_status() -> None:
    """encode_status writes "ob" exactly as the firmware does, and decode reads it back."""
    from dolbom.protocol import OutboxHealth

    ob = OutboxHealth(depth=48, evicted=0, merged=2, werr=1)
    payload = encode_status("ready", boot=1, hb=60, outbox=ob)
    assert orjson.loads(payload)["ob"] == {"depth": 48, "evicted": 0, "merged": 2, "werr": 1}
    s = decode(STA, payload)
    assert isinstance(s, Status) and s.outbox == ob
