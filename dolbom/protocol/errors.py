"""Why a message failed validation.

Every rejection carries a short, stable reason code (counted in metrics and
stored with the dead letter) and a human detail that never includes the
payload itself: payloads are health data (STYLE.md, Errors).
"""

from __future__ import annotations

import enum


class Reason(enum.StrEnum):
    BAD_TOPIC = "bad_topic"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    TOO_LARGE = "too_large"
    BAD_VERSION = "bad_version"
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    UNKNOWN_EVENT_TYPE = "unknown_event_type"
    BAD_READING = "bad_reading"
    BAD_STATE = "bad_state"
    UNKNOWN_DEVICE = "unknown_device"
    SITE_MISMATCH = "site_mismatch"


class DecodeError(ValueError):
    """A message that does not follow wire contract v1 (DESIGN.md §3).

    The caller drops it, counts it and dead-letters it; it is never retried.
    """

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail
