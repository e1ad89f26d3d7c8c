"""Alert errors, classified by what the caller must do."""

from __future__ import annotations


class AlertError(Exception):
    """Base class: the operation was refused; the message says why (shown to people)."""


class AlertNotFound(AlertError):
    """No such alert (or not visible to the caller)."""


class InvalidTransition(AlertError):
    """The alert is not in a state that allows this (e.g. resolving a resolved alert)."""


class DeliveryFailed(AlertError):
    """A notification could not be delivered on this channel (the outbox retries it)."""
