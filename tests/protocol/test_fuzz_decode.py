"""Property tests of the payload decoder (TESTPLAN I-01): bad input is only ever a
DecodeError with a reason; a valid life-safety event is never refused for extra fields."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dolbom.protocol import (
    LIFE_SAFETY,
    READINGS,
    DecodeError,
    Envelope,
    Event,
    Kind,
    Reason,
    Telemetry,
    Topic,
    Topics,
    decode,
    encode_event,
)

TOPICS = [
    Topic(Kind.EVENT, "s1", "d1", "button"),
    Topic(Kind.EVENT, "s1", "d1", "fall"),
    Topic(Kind.EVENT, "s1", "d1", "door"),
    Topic(Kind.EVENT, "s1", "d1", "motion"),
    Topic(Kind.EVENT, "s1", "d1", "unknown-type"),
    Topic(Kind.TELEMETRY, "s1", "d1"),
    Topic(Kind.STATUS, "s1", "d1"),
    Topic(Kind.GATEWAY_STATUS, "s1", "g1"),
    Topic(Kind.ACK, "s1", "d1"),
    Topic(Kind.CMD, "s1", "d1", "ping"),
]
topics = st.sampled_from(TOPICS)
ENVELOPE_KEYS = ("v", "boot", "seq", "ts", "tq", "hist", "val", "readings", "batch", "state",
                 "fw", "kind", "hb", "next")

# Raw JSON numbers a JSON library may or may not accept: NaN/Infinity are not JSON,
# 1e309 overflows a double, 1e308 does not.
odd_numbers = st.sampled_from([b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"1e308",
                               b"-1e308", b"1e309", b"-1e400", b"5e-324", b"-0", b"1e-400",
                               b"18446744073709551616", b"-9223372036854775809", b"1.0e+2"])
scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=80))
json_values = st.recursive(
    scalars,
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=12,
)


def _decode_or_reason(topic: Topic, payload: bytes) -> object:
    """Decode; a refusal must be a DecodeError carrying a Reason and a detail."""
    try:
        return decode(topic, payload)
    except DecodeError as e:
        assert isinstance(e.reason, Reason)
        assert e.detail
        return e.reason


def _raw_object(fields: dict[str, bytes]) -> bytes:
    return b"{" + b",".join(orjson.dumps(k) + b":" + v for k, v in fields.items()) + b"}"


ENV = {"v": 1, "boot": 3, "seq": 9, "ts": 1_763_700_000_123, "tq": 2}


@settings(max_examples=200)
@given(topics, st.dictionaries(st.sampled_from(ENVELOPE_KEYS), json_values, max_size=10))
def test_wrong_types_in_known_fields_are_refused_with_a_reason(
    topic: Topic, fields: dict[str, Any]
) -> None:
    """Any value of any type in any known field decodes or is refused with a reason."""
    _decode_or_reason(topic, orjson.dumps(fields))
    _decode_or_reason(topic, orjson.dumps({**ENV, **fields}))


@settings(max_examples=200)
@given(topics, st.sampled_from((*ENVELOPE_KEYS, "heart_rate_bpm", "temperature_c")),
       odd_numbers, st.booleans())
def test_odd_numbers_anywhere_are_refused_with_a_reason(
    topic: Topic, key: str, number: bytes, in_readings: bool
) -> None:
    """NaN, ±Infinity, 1e308, overflowing and huge integers never crash the decoder."""
    fields = {k: orjson.dumps(v) for k, v in ENV.items()}
    if in_readings:
        fields["readings"] = _raw_object({key: number})
    else:
        fields[key] = number
    out = _decode_or_reason(topic, _raw_object(fields))
    if number in (b"NaN", b"-NaN", b"Infinity", b"-Infinity", b"1e309", b"-1e400"):
        assert out is Reason.NOT_JSON  # not JSON (or not a finite double): refused whole


@settings(max_examples=200)
@given(st.sampled_from(sorted(READINGS)),
       st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**60), 2**60))
def test_any_finite_reading_decodes_or_is_refused_with_a_reason(name: str, value: float) -> None:
    """Negative heart rates, 1e308 and the like decode as numbers or are refused: the
    contract has no per-reading range, so plausibility is the rules' job, not the decoder's."""
    out = _decode_or_reason(Topic(Kind.TELEMETRY, "s1", "d1"),
                            orjson.dumps({**ENV, "readings": {name: value}}))
    if isinstance(out, Telemetry):
        assert out.samples[0].readings[name] == float(value)
    else:
        assert out is Reason.BAD_READING  # an integer beyond 2**53


@settings(max_examples=200)
@given(topics, st.lists(st.sampled_from(list(ENV)), unique=True))
def test_missing_envelope_fields_are_refused_with_a_reason(topic: Topic, drop: list[str]) -> None:
    """Any subset of the envelope decodes or is refused with a reason."""
    _decode_or_reason(topic, orjson.dumps({k: v for k, v in ENV.items() if k not in drop}))


@settings(max_examples=20, suppress_health_check=[HealthCheck.too_slow])
@given(topics, st.integers(1, 3), st.sampled_from(["val", "fw", "extra", "readings", "state"]))
def test_huge_strings_are_refused_with_a_reason(topic: Topic, mib: int, key: str) -> None:
    """A string of 1-3 MiB in any field is refused (too large), never parsed further."""
    out = _decode_or_reason(topic, orjson.dumps({**ENV, key: "x" * (mib << 20)}))
    assert out is Reason.TOO_LARGE


@settings(max_examples=100)
@given(topics, st.integers(1, 5000), st.sampled_from([(b"[", b"]"), (b'{"a":', b"}")]))
def test_deep_nesting_is_refused_with_a_reason(
    topic: Topic, depth: int, brackets: tuple[bytes, bytes]
) -> None:
    """Deeply nested JSON, as a field or the whole payload, never overflows the stack."""
    opening, closing = brackets
    nested = opening * depth + b"1" + closing * depth
    _decode_or_reason(topic, nested)
    fields = {k: orjson.dumps(v) for k, v in ENV.items()}
    fields["extra"] = nested
    _decode_or_reason(topic, _raw_object(fields))


@settings(max_examples=200)
@given(topics, st.binary(max_size=200), st.integers(0, 100))
def test_invalid_utf8_is_refused_with_a_reason(topic: Topic, junk: bytes, at: int) -> None:
    """Invalid UTF-8, inside a string or around the JSON, is refused with a reason."""
    good = orjson.dumps({**ENV, "val": "abc"})
    i = at % (len(good) + 1)
    _decode_or_reason(topic, good[:i] + junk + good[i:])
    _decode_or_reason(topic, good.replace(b"abc", b"a\xff\xfe" + junk))
    _decode_or_reason(topic, good.replace(b"abc", b"\\ud800"))  # lone surrogate escape


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", Reason.NOT_UTF8),
        (b'{"v":1,"val":"\xed\xa0\x80"}', Reason.NOT_UTF8),  # UTF-8-encoded surrogate
        (b"[" * 5000 + b"]" * 5000, Reason.NOT_JSON),
        (orjson.dumps({**ENV, "val": "x" * (1 << 20)}), Reason.TOO_LARGE),
        (b'{"v":1,"boot":1,"seq":1,"ts":1,"tq":2,"val":NaN}', Reason.NOT_JSON),
        (b'{"v":1,"boot":1,"seq":1,"ts":1,"tq":2,"val":1e309}', Reason.NOT_JSON),
    ],
)
def test_named_bad_payloads_get_their_reason(payload: bytes, reason: Reason) -> None:
    """The I-01 cases named in the test plan are refused with the expected reason code."""
    assert _decode_or_reason(Topic(Kind.EVENT, "s1", "d1", "button"), payload) is reason


@pytest.mark.parametrize(
    ("topic", "payload"),
    [
        (Topic(Kind.STATUS, "s1", "d1"), b'{"state":[]}'),
        (Topic(Kind.GATEWAY_STATUS, "s1", "g1"), b'{"state":{}}'),
        (Topic(Kind.EVENT, "s1", "d1", "door"), orjson.dumps({**ENV, "val": ["open"]})),
        (Topic(Kind.EVENT, "s1", "d1", "bed"), orjson.dumps({**ENV, "val": {}})),
    ],
)
def test_container_in_an_enum_field_is_refused_with_a_reason(topic: Topic, payload: bytes) -> None:
    """A list or object where a status state or a door/bed value belongs is a DecodeError."""
    assert _decode_or_reason(topic, payload) in (Reason.BAD_STATE, Reason.BAD_FIELD)


envelopes = st.builds(Envelope, boot=st.integers(0, 2**53 - 1), seq=st.integers(0, 2**53 - 1),
                      ts=st.integers(0, 4_102_444_800_000), tq=st.integers(0, 2),
                      hist=st.booleans())
vals = (st.none() | st.booleans() | st.text(max_size=64) | st.integers(-(2**53) + 1, 2**53 - 1)
        | st.floats(allow_nan=False, allow_infinity=False))
unknown_keys = st.text(max_size=12).filter(lambda k: k not in ENVELOPE_KEYS)
extras = st.dictionaries(unknown_keys, json_values, max_size=6)


@settings(max_examples=200)
@given(st.sampled_from(sorted(LIFE_SAFETY)), envelopes, vals, extras)
def test_valid_life_safety_event_with_unknown_extra_fields_is_accepted(
    etype: str, env: Envelope, val: Any, extra: dict[str, Any]
) -> None:
    """Any valid alarm (button, fall, smoke, gas, sos_voice) decodes, whatever unknown
    fields a newer firmware adds (as long as the payload fits the size limit)."""
    topic = Topic(Kind.EVENT, "s1", "d1", etype)
    payload = encode_event(env, val, **extra)
    m = decode(topic, payload)
    assert isinstance(m, Event) and m.life_safety
    assert (m.env, m.val) == (env, val)


@settings(max_examples=200)
@given(st.text(max_size=120) | st.binary(max_size=120).map(lambda b: b.decode("latin-1")))
def test_topic_parse_never_raises(topic: str) -> None:
    """Any topic string parses to a Topic or None, never an exception."""
    t = Topics().parse(topic)
    assert t is None or isinstance(t, Topic)
