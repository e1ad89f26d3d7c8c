"""Errors of the firmware tool: all are the operator's to fix (bad input, missing tool)."""

from __future__ import annotations


class FirmwareToolError(Exception):
    """A bundle cannot be built or flashed; the message says what to change."""
