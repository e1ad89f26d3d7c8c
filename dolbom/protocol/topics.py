"""Topic names of wire contract v1 (DESIGN.md §3): build and parse, in one place.

    <prefix>/<site>/<dev>/status
    <prefix>/<site>/<dev>/event/<type>
    <prefix>/<site>/<dev>/telemetry
    <prefix>/<site>/<dev>/ack
    <prefix>/<site>/<dev>/cmd/<name>
    <prefix>/<site>/gw/<gw>/status

Topics carry opaque ids only, never personal data. ``gw`` is reserved and can
never be a device id, so the gateway status topic is unambiguous.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

DEFAULT_PREFIX = "care/v1"
ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,47}$"
_ID_RE = re.compile(ID_PATTERN)
GATEWAY_SEGMENT = "gw"

COMMANDS = frozenset({"config", "ping", "identify"})


class Kind(enum.StrEnum):
    STATUS = "status"
    EVENT = "event"
    TELEMETRY = "telemetry"
    ACK = "ack"
    CMD = "cmd"
    GATEWAY_STATUS = "gateway_status"


def is_valid_id(value: str) -> bool:
    """True if ``value`` may be a site, device or gateway id."""
    return bool(_ID_RE.match(value)) and "\n" not in value


def check_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a valid id, else raise ValueError saying why."""
    if not is_valid_id(value):
        raise ValueError(
            f"{what} {value!r} is not valid: use 1-48 characters a-z, 0-9, '_' or '-', "
            "starting with a letter or digit"
        )
    if value == GATEWAY_SEGMENT:
        raise ValueError(f"{what} 'gw' is reserved for gateway topics")
    return value


@dataclass(frozen=True, slots=True)
class Topic:
    """A parsed topic. ``device`` is the gateway id for GATEWAY_STATUS."""

    kind: Kind
    site: str
    device: str
    name: str = ""  # event type or command name


class Topics:
    """Builds and parses topics under one prefix (``care/v1`` by default)."""

    __slots__ = ("_common", "_n", "_parts", "prefix")

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        prefix = prefix.strip("/")
        if not prefix or any(c in prefix for c in "+#\0"):
            raise ValueError(f"topic prefix {prefix!r} is not valid")
        self.prefix = prefix
        self._parts = prefix.split("/")
        self._n = len(self._parts)
        # The uplink topics of nearly every message, in one regular expression; anything
        # else (gateway status, commands, invalid topics) takes the general parse.
        seg = r"([a-z0-9][a-z0-9_-]{0,47})"
        self._common = re.compile(
            rf"{re.escape(prefix)}/{seg}/{seg}/(?:(telemetry|status|ack)|event/{seg})"
        ).fullmatch

    # -- build -------------------------------------------------------------
    def status(self, site: str, dev: str) -> str:
        return f"{self.prefix}/{site}/{dev}/status"

    def event(self, site: str, dev: str, event_type: str) -> str:
        return f"{self.prefix}/{site}/{dev}/event/{event_type}"

    def telemetry(self, site: str, dev: str) -> str:
        return f"{self.prefix}/{site}/{dev}/telemetry"

    def ack(self, site: str, dev: str) -> str:
        return f"{self.prefix}/{site}/{dev}/ack"

    def cmd(self, site: str, dev: str, name: str) -> str:
        return f"{self.prefix}/{site}/{dev}/cmd/{name}"

    def gateway_status(self, site: str, gw: str) -> str:
        return f"{self.prefix}/{site}/{GATEWAY_SEGMENT}/{gw}/status"

    def uplink_filter(self) -> str:
        """Subscription filter that covers every topic under the prefix."""
        return f"{self.prefix}/#"

    # -- parse -------------------------------------------------------------
    def parse(self, topic: str) -> Topic | None:
        """Parse a topic; None if it is not a valid v1 topic under this prefix."""
        m = self._common(topic)
        if m is not None:
            site, dev, leaf, name = m.groups()
            if dev != GATEWAY_SEGMENT:
                if name is not None:
                    return Topic(Kind.EVENT, site, dev, name)
                return Topic(_LEAVES[leaf], site, dev)
        return self.parse_general(topic)

    def parse_general(self, topic: str) -> Topic | None:
        """``parse`` without its shortcut for the common topics (the reference)."""
        parts = topic.split("/")
        n = self._n
        if parts[:n] != self._parts:
            return None
        rest = parts[n:]
        if len(rest) < 3:
            return None
        site, dev = rest[0], rest[1]
        if not is_valid_id(site):
            return None
        if dev == GATEWAY_SEGMENT:
            if len(rest) == 4 and rest[3] == "status" and is_valid_id(rest[2]):
                return Topic(Kind.GATEWAY_STATUS, site, rest[2])
            return None
        if not is_valid_id(dev):
            return None
        leaf = rest[2]
        if len(rest) == 3:
            if leaf == "status":
                return Topic(Kind.STATUS, site, dev)
            if leaf == "telemetry":
                return Topic(Kind.TELEMETRY, site, dev)
            if leaf == "ack":
                return Topic(Kind.ACK, site, dev)
            return None
        if len(rest) == 4 and rest[3] and is_valid_id(rest[3]):
            if leaf == "event":
                return Topic(Kind.EVENT, site, dev, rest[3])
            if leaf == "cmd":
                return Topic(Kind.CMD, site, dev, rest[3])
        return None


_LEAVES = {"telemetry": Kind.TELEMETRY, "status": Kind.STATUS, "ack": Kind.ACK}
