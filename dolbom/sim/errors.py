"""Simulator errors, classified by what the caller must do."""

from __future__ import annotations


class SimError(Exception):
    """Base class of the simulator's errors."""


class PlanError(SimError):
    """The plan file is missing, unreadable, unsafe or does not match: fix it, do not retry."""


class IncidentError(SimError):
    """An incident cannot be injected as asked (unknown home, no such device, device dead)."""


class ControlError(SimError):
    """The control socket could not be reached or refused the command."""


class StateError(SimError):
    """The simulator's saved device state is unusable: move it away, do not guess."""
