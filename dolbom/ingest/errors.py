"""Ingest errors, classified by what the caller must do (STYLE.md, Errors)."""

from __future__ import annotations


class IngestError(Exception):
    """Base class."""


class RetryLater(IngestError):
    """InfluxDB is unreachable, overloaded or refusing us now: keep the batch, retry or spool."""


class Rejected(IngestError):
    """InfluxDB refused these lines for what they are: dead-letter them, never retry."""

    def __init__(self, lines: list[bytes], reason: str) -> None:
        super().__init__(reason)
        self.lines = lines
        self.reason = reason
