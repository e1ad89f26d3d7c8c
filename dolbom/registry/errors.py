"""Registry errors, classified by what the caller must do.

Every message names the thing by its opaque id (never a resident's name: the
message may end up in a log) and says what is wrong, e.g.
``home 'h01' does not exist``. The CLI prints it as one line; the HTTP API will
map NotFound → 404, AlreadyExists → 409, InvalidInput → 422.
"""

from __future__ import annotations


class RegistryError(Exception):
    """Base class: the request cannot be done as asked; retrying will not help."""


class NotFound(RegistryError):
    """The site, home, resident or device named does not exist."""


class AlreadyExists(RegistryError):
    """An id (or MQTT user name) is already taken."""


class InvalidInput(RegistryError):
    """A value is malformed or out of range."""


class BrokerNotRunning(RegistryError):
    """The broker files were written but there is no running broker to reload."""
