"""Due steps of unacknowledged alerts: re-notify and escalate (``outbox.escalate_due``).
The rules process does the welfare and technical ones, and the life-safety ones only
when it runs the alarm path itself (``alarm_process=inline``); otherwise those are the
alarm process's (``outbox.of_class``: never both for one alert)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts.gate import WriteGate
from dolbom.alerts.model import EscalationTable
from dolbom.alerts.outbox import escalate_due
from dolbom.alerts.pause import pause

log = logging.getLogger("dolbom.alerts")


class Escalations:
    """``high``: which alerts to step, as ``escalate_due`` takes it (None: all; False:
    all but the life-safety ones; True: those only). ``urgent``: ahead of other writes
    at the write gate (the alarm process's)."""

    def __init__(self, sessions: sessionmaker[Session], gate: WriteGate, table: EscalationTable,
                 clock: Callable[[], float], wake: Callable[[], None], *,
                 high: bool | None, urgent: bool = False, log: logging.Logger = log) -> None:
        self.sessions, self.gate, self.table, self.clock = sessions, gate, table, clock
        self.wake, self.high, self.urgent, self.log = wake, high, urgent, log
        self.steps = 0  # escalation steps taken

    async def run_once(self) -> int:
        """Re-notify and escalate due alerts; how many steps were taken."""
        def step() -> int:
            now = datetime.fromtimestamp(self.clock(), UTC)
            with self.sessions.begin() as s:
                return escalate_due(s, now, self.table, high=self.high)

        n = await self.gate.run(step, urgent=self.urgent)
        if n:
            self.steps += n
            self.wake()
        return n

    async def run(self, stopping: asyncio.Event, every_s: float) -> None:
        while not stopping.is_set():
            try:
                await self.run_once()
            except Exception:
                self.log.exception("escalation pass failed; retrying")
            await pause(stopping, every_s)
