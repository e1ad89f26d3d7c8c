"""Gateway errors, classified by what the caller must do."""

from __future__ import annotations


class GatewayError(Exception):
    """Base class: something the operator must fix (configuration, files, rights)."""


class QueueError(GatewayError):
    """The durable queue cannot be opened or written (disk full, read-only, corrupt):
    the gateway stops acknowledging local messages, so devices keep them."""


class SetupError(GatewayError):
    """Installing the gateway on this machine failed (paths, rights, systemd)."""
