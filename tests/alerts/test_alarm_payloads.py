"""The alarm path's pure parts: a life-safety event is built from the topic and its
payload, whether the payload is valid or not, with a dedup key either way."""

from __future__ import annotations

import base64
import hashlib

import pytest

from dolbom.alerts.alarm.decode import (
    RAW_KEEP_BYTES,
    UNDECODABLE_BOOT,
    alarm_of,
    raw_detail,
    undecodable_key,
)
from dolbom.alerts.model import Rule
from dolbom.protocol import Envelope, Kind, Topic, encode_event

BUTTON = Topic(Kind.EVENT, "s1", "btn-1", "button")
AT_MS = 1_763_700_000_000


def test_valid_event_keeps_its_device_key_and_ack() -> None:
    """A valid event is keyed by (dev, boot, seq) and gets an ack of the same (boot, seq)."""
    a = alarm_of(BUTTON, encode_event(Envelope(3, 9, AT_MS - 500, 2)), AT_MS)
    assert a.rule is Rule.BUTTON and a.device == "btn-1" and a.site == "s1"
    assert a.event_key == ("btn-1", 3, 9) and a.ack == (3, 9)
    assert a.event_ts_ms == AT_MS - 500 and a.at_ms == AT_MS and a.reason is None
    assert a.detail == {"device": "btn-1", "hist": False}


BROKEN = [
    pytest.param(b'{"v":1,"boot":"one","seq":2,"ts":1,"tq":2}', "bad_field", id="wrong-type"),
    pytest.param(b'{"v":1,"boot":1,"seq":-4,"ts":1,"tq":2}', "bad_field", id="bad-seq"),
    pytest.param(b'{"v":1,"boot":1,"se', "not_json", id="truncated-json"),
    pytest.param(b"\xff\xfe\x00press", "not_utf8", id="not-json-bytes"),
    pytest.param(b"", "not_json", id="empty"),
    pytest.param(b"[1,2]", "not_object", id="not-an-object"),
]


@pytest.mark.parametrize(("payload", "reason"), BROKEN)
def test_broken_payload_is_still_an_alarm_from_the_topic(payload: bytes, reason: str) -> None:
    """A payload that fails validation is still a life-safety alarm of the topic's type and
    device, with the raw payload kept, no ack, and a key from (device, sha256 of payload)."""
    a = alarm_of(BUTTON, payload, AT_MS)
    assert a.rule is Rule.BUTTON and a.device == "btn-1" and a.site == "s1"
    assert a.reason is not None and a.reason.value == reason
    assert a.ack is None and a.event_ts_ms is None
    assert a.event_key == undecodable_key("btn-1", payload)
    assert a.detail["undecodable"] is True and a.detail["reason"] == reason
    assert a.detail["payload_sha256"] == hashlib.sha256(payload).hexdigest()


def test_undecodable_key_never_meets_a_device_key() -> None:
    """The key of a broken payload has a boot no device uses (boot is ≥ 0 on the wire), a
    seq that fits a signed 64-bit column, and depends on both device and payload."""
    k = undecodable_key("btn-1", b"x")
    assert k[0] == "btn-1" and k[1] == UNDECODABLE_BOOT < 0
    assert 0 <= k[2] < 2**63
    assert undecodable_key("btn-1", b"x") == k  # a redelivery: the same key
    assert undecodable_key("btn-2", b"x") != k
    assert undecodable_key("btn-1", b"y") != k


@pytest.mark.parametrize(("payload", "key", "kept"), [
    (b'{"v":1,"boot":"x"}', "payload", '{"v":1,"boot":"x"}'),
    ("눌림".encode(), "payload", "눌림"),
    (b"\xff\xfe\x00", "payload_b64", base64.b64encode(b"\xff\xfe\x00").decode()),
    (b"a\x00b", "payload_b64", base64.b64encode(b"a\x00b").decode()),
])
def test_raw_payload_is_kept_as_text_or_base64(payload: bytes, key: str, kept: str) -> None:
    """UTF-8 text without NULs is kept as text, anything else as base64, with size and hash."""
    d = raw_detail(payload)
    assert d[key] == kept
    assert d["payload_bytes"] == len(payload) and d["payload_truncated"] is False


def test_raw_payload_is_bounded() -> None:
    """Only the first 4 KiB are kept (a cut multi-byte character is dropped, not garbled)."""
    payload = b"a" + "가".encode() * 5000  # 3 bytes each: the 4 KiB cut lands inside one
    d = raw_detail(payload)
    assert d["payload_truncated"] is True and d["payload_bytes"] == len(payload)
    assert len(d["payload"].encode()) <= RAW_KEEP_BYTES
    assert d["payload"] == "a" + "가" * ((RAW_KEEP_BYTES - 1) // 3)
    binary = raw_detail(b"\xff" * 10_000)
    assert len(base64.b64decode(binary["payload_b64"])) == RAW_KEEP_BYTES
