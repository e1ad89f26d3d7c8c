"""A ``Notice``: one thing to tell one recipient, and the kinds of notice there are.

Both the channels' interface (``notify.base``) and the texts (``notify.texts``) read it;
neither imports the other for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

# Why a notice is sent: first notification, the same people again (life-safety,
# unacknowledged at 60 s), the next tier of people, the condition happened
# again on an open alert, or the alert was resolved.
KINDS = frozenset({"raised", "renotify", "escalated", "repeat", "resolved"})


@dataclass(frozen=True, slots=True)
class Notice:
    """One thing to tell one recipient. Opaque ids only: no personal data (DESIGN.md §6)."""

    alert_id: int
    rule: str
    priority: str  # "high" | "medium" | "low"
    status: str  # "open" | "acknowledged" | "resolved"
    site: str
    home: str | None
    device: str | None
    raised_at: datetime  # aware UTC (naive is read as UTC)
    event_ts: datetime | None
    kind: str  # one of KINDS
    tier: int  # escalation tier: 1 = the first people told
    detail: Mapping[str, object] = field(default_factory=dict)
    console_url: str | None = None
    # Which repeat or re-notification of this kind and tier (the outbox's step): two
    # "repeat" notices at the same tier (inactivity tier 2, then tier 3) are different
    # news and must not share a delivery id, or a deduping receiver drops the second.
    step: int = 0
