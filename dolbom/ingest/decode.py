"""MQTT message → validated contract message, or a reason it was rejected (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from dolbom.protocol import DecodeError, Message, Reason, Topics, decode


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: Reason
    detail: str
    device: str | None


def decode_message(topics: Topics, topic: str, payload: bytes) -> Message | Rejection:
    """Parse the topic and validate the payload; never raises."""
    parsed = topics.parse(topic)
    if parsed is None:
        return Rejection(Reason.BAD_TOPIC, "topic is not a v1 uplink topic", None)
    try:
        return decode(parsed, payload)
    except DecodeError as e:
        return Rejection(e.reason, e.detail, parsed.device)
    except Exception as e:
        return Rejection(Reason.BAD_FIELD, f"undecodable payload ({type(e).__name__})",
                         parsed.device)
