"""What the engine answers: actions for the service to carry out into the alert journal
(``Raise`` / ``Clear`` / ``Suppressed``) and the console's watch list (``Watch``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dolbom.alerts.model import Priority, Rule


@dataclass(frozen=True, slots=True)
class Raise:
    """Open an alert, or repeat the open one of (home, rule). ``at_ms`` is when the
    condition was met (for a timed rule: the moment it matured)."""

    rule: Rule
    priority: Priority
    at_ms: int
    device: str | None = None
    detail: Mapping[str, object] = field(default_factory=dict)
    event_key: tuple[str, int, int] | None = None
    event_ts_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Clear:
    """The condition cleared: technical and welfare alerts auto-resolve (never life-safety)."""

    rule: Rule
    at_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class Suppressed:
    """A welfare rule would have fired; recorded, not notified (mode, or lost sensors)."""

    rule: Rule
    at_ms: int
    reason: str


@dataclass(frozen=True, slots=True)
class Watch:
    """A weak welfare signal: a line on the console's daily watch list, never a push
    (DESIGN.md §5: "everything weaker goes to the console's daily watch list")."""

    rule: Rule
    at_ms: int
    reasons: tuple[str, ...]  # in plain English words
    device: str | None = None
    reasons_ko: tuple[str, ...] = ()  # the same in Korean, for the console


Action = Raise | Clear | Suppressed | Watch
