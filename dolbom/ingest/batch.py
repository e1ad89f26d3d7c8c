"""The batch of messages filling while the one before it is made durable."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from dolbom.ingest.receive_times import Lookup
from dolbom.mqtt import Received
from dolbom.registry import service as registry

# A message whose time the first-receive-time store decides at the next flush:
# ``(lookup, env_ts, event, lines, site, home, readings)``: ``env_ts`` is the base when a
# read-only lookup finds nothing; ``lines`` its points without their time and
# ``readings`` those for the home's rollup, each with its offset from the message's time.
# Plain tuples of plain values, no decoded objects: the garbage collector stops tracking
# them, so the thousands a batch holds cost it nothing (a class cost ~7 µs a message).
# (Readings are kept as their items: a tuple holding a dict is always tracked.)
Timed: TypeAlias = tuple[Lookup, int, bool, tuple[tuple[str, int], ...], str, "str | None",
                         tuple[tuple[int, tuple[tuple[str, float], ...]], ...]]


@dataclass(slots=True)
class Batch:
    events: list[bytes] = field(default_factory=list)
    telemetry: list[bytes] = field(default_factory=list)
    acks: list[Received] = field(default_factory=list)
    dead: list[registry.DeadLetterIn] = field(default_factory=list)
    timed: list[Timed] = field(default_factory=list)  # points not made yet (``stamp``)
    # The receive time last given to a device's event / reading timed by our clock.
    event_rx: dict[str, int] = field(default_factory=dict)
    reading_rx: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.acks)

    @property
    def points(self) -> int:
        return len(self.events) + len(self.telemetry)


class Pending:
    """Messages received and not yet durable: the batch filling now, and the messages of
    the batch being flushed (``inflight``) until they are acknowledged."""

    def __init__(self) -> None:
        self.batch = Batch()
        self.inflight = 0

    def __len__(self) -> int:
        return len(self.batch) + self.inflight

    def take(self) -> Batch:
        """The batch to flush; a new one starts filling."""
        batch, self.batch = self.batch, Batch()
        return batch

    def requeue(self, old: Batch) -> None:
        """Put a batch that could not be made durable back in front of the current one."""
        new = self.batch
        self.batch = Batch(old.events + new.events, old.telemetry + new.telemetry,
                           old.acks + new.acks, old.dead + new.dead, old.timed + new.timed)
