"""InfluxDB errors, classified by what the caller must do (STYLE.md, Errors)."""

from __future__ import annotations


class InfluxError(Exception):
    """Base class."""


class RetryLater(InfluxError):
    """InfluxDB is unreachable, overloaded or refusing us now: keep the batch, retry or spool."""


class Rejected(InfluxError):
    """InfluxDB refused these lines for what they are: dead-letter them, never retry."""

    def __init__(self, lines: list[bytes], reason: str) -> None:
        super().__init__(reason)
        self.lines = lines
        self.reason = reason


class QueryFailed(InfluxError):
    """InfluxDB answered a query or an admin statement with an error (``status``: the HTTP
    status, None for an InfluxQL error in a 200 answer)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
