"""Dead letters: messages ingest cannot store, and points InfluxDB refused, kept in the
registry database with their reason (STYLE.md "Errors": count it, dead-letter it, log
one line; the payload at debug level only, it is health data)."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from dolbom.influx.errors import Rejected
from dolbom.ingest.batch import Pending
from dolbom.ingest.metrics import Counts
from dolbom.mqtt import Received
from dolbom.registry import service as registry

log = logging.getLogger("dolbom.ingest")

MAX_DEAD_PAYLOAD = 4096


class DeadLetters:
    """Adds dead letters to the batch filling now (stored with it at the next flush)."""

    def __init__(self, pending: Pending, counts: Counts,
                 sessions: sessionmaker[Session]) -> None:
        self.pending, self.counts, self.sessions = pending, counts, sessions
        self._logged: dict[str, tuple[float, int]] = {}

    def add(self, msg: Received, reason: str, detail: str, device: str | None,
            received_ms: int) -> None:
        self.counts.dead_letter(reason)
        self._log(reason, detail, msg)
        self.pending.batch.dead.append(registry.DeadLetterIn(
            received_at=datetime.fromtimestamp(received_ms / 1000, UTC),
            topic=msg.topic[:1024], device=device, reason=reason, detail=detail[:500],
            payload=msg.payload[:MAX_DEAD_PAYLOAD],
        ))

    def rejected(self, rejected: list[Rejected]) -> None:
        """Lines InfluxDB refused (bad points, not a failed write)."""
        now = datetime.now(UTC)
        for r in rejected:
            for line in r.lines:
                self.counts.dead_letter("influx_rejected")
                self.pending.batch.dead.append(registry.DeadLetterIn(
                    received_at=now, topic="", device=None, reason="influx_rejected",
                    detail=r.reason[:500], payload=line[:MAX_DEAD_PAYLOAD],
                ))
            log.warning("InfluxDB rejected %d line(s): %s", len(r.lines), r.reason[:200])

    def _log(self, reason: str, detail: str, msg: Received) -> None:
        """One log line per reason per minute (a flood must not flood the log too).

        Counts live in metrics; the payload is health data and goes to debug only.
        """
        now = time.monotonic()
        last, suppressed = self._logged.get(reason, (0.0, 0))
        if now - last < 60.0:
            self._logged[reason] = (last, suppressed + 1)
        else:
            more = f" (+{suppressed} more since the last line)" if suppressed else ""
            log.warning("dead letter: %s (%s) on %s%s", reason, detail, msg.topic[:200], more)
            self._logged[reason] = (now, 0)
        log.debug("dead letter payload: %r", msg.payload[:200])

    async def store(self, dead: list[registry.DeadLetterIn]) -> None:
        def insert() -> None:
            with self.sessions.begin() as s:
                registry.add_dead_letters(s, dead)

        try:
            await asyncio.to_thread(insert)
        except Exception:
            log.exception("could not store %d dead letters; keeping them for the next flush",
                          len(dead))
            self.pending.batch.dead.extend(dead)
