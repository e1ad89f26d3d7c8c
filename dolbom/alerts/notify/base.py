"""The notification interface (DESIGN.md §5): a ``Channel``, and how it fails (the
``Notice`` it sends: ``notify.notice``).

The delivery worker takes a row from the durable outbox, turns it into a
``Notice`` and calls ``Channel.send(address, notice, locale)``. A channel
either returns (delivered: the far side accepted it) or raises
``DeliveryError``: ``retryable`` tells the worker whether to try again later
with backoff, or to give up on this address now and fall back to the next
channel (a bad address, a 4xx that will never succeed). Every send is bounded
by the channel's timeout; a timeout is retryable and ``silent`` (no answer at
all, as opposed to a refusal or an error status): the outbox then sends only one
attempt at a time into that link (``dolbom.alerts.outbox``). Delivery is at least
once: a send that timed out may still have arrived, so receivers dedup on
``X-Dolbom-Delivery`` (webhook) or accept the rare duplicate.

Also here, because they are the webhook's wire contract (and a receiver needs
them without the rest): ``webhook_body``, ``sign`` and ``verify``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from typing import Protocol

import orjson

from dolbom.alerts.notify.notice import Notice
from dolbom.alerts.notify.texts import render

__all__ = [
    "Channel",
    "DeliveryError",
    "delivery_id",
    "iso_utc",
    "render",
    "sign",
    "verify",
    "webhook_body",
]

SIGNATURE_HEADER = "X-Dolbom-Signature"
DELIVERY_HEADER = "X-Dolbom-Delivery"
_SIG_PREFIX = "sha256="


class DeliveryError(Exception):
    """A send failed. ``retryable`` False: this address will never work as it is.
    ``silent``: the far side gave no answer within the timeout (the request may still
    be held somewhere on the way and arrive later)."""

    def __init__(self, reason: str, *, retryable: bool, silent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retryable = retryable
        self.silent = silent

    def __repr__(self) -> str:
        return (f"DeliveryError({self.reason!r}, retryable={self.retryable}"
                f"{', silent=True' if self.silent else ''})")


class Channel(Protocol):
    """A way to reach people. ``address`` is channel-specific (URL, topic, e-mail address)."""

    name: str  # "webhook" | "ntfy" | "email" | "apprise"

    async def send(self, address: str, notice: Notice, locale: str) -> None:
        """Deliver or raise DeliveryError; never takes longer than the channel's timeout."""
        ...


def iso_utc(ts: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``, e.g. ``2025-11-21T03:00:00.123Z``."""
    if ts.tzinfo is None:  # SQLite hands back naive UTC
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def delivery_id(notice: Notice) -> str:
    """``<alert_id>-<kind>-<tier>`` (``-<step>`` when step > 0): the same for every retry of
    one notice and different for every other notice, so receivers can dedup on it."""
    base = f"{notice.alert_id}-{notice.kind}-{notice.tier}"
    return f"{base}-{notice.step}" if notice.step else base


def webhook_body(notice: Notice, locale: str) -> bytes:
    """The webhook JSON of DESIGN.md §5: exactly these keys, times in UTC, text in ``locale``."""
    return orjson.dumps({
        "id": notice.alert_id,
        "rule": notice.rule,
        "priority": notice.priority,
        "status": notice.status,
        "site": notice.site,
        "home": notice.home,
        "device": notice.device,
        "raised_at": iso_utc(notice.raised_at),
        "event_ts": iso_utc(notice.event_ts) if notice.event_ts is not None else None,
        "text": render(notice, locale)[1],
    })


def sign(body: bytes, secret: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``, the ``X-Dolbom-Signature`` header value."""
    return _SIG_PREFIX + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(body: bytes, secret: bytes, header: str) -> bool:
    """True if ``header`` is the signature of exactly ``body`` under ``secret`` (constant time).

    For receivers: verify the raw request bytes before parsing them.
    """
    expected = sign(body, secret).encode("ascii")
    got = header.strip().encode("utf-8", "replace")
    return hmac.compare_digest(expected, got)
