"""The rules' actions carried out into the database: ``Raise`` / ``Clear`` into the
alert journal (``lifecycle``), ``Suppressed`` and ``Watch`` rows. The rules hand them
over in memory (``queue``); one task writes them, behind the life-safety writes of the
write gate, and wakes the outbox."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial

from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import engine
from dolbom.alerts import lifecycle as lc
from dolbom.alerts.gate import WriteGate
from dolbom.alerts.model import EscalationTable
from dolbom.alerts.pause import pause
from dolbom.registry.models import Suppression, WatchItem

log = logging.getLogger("dolbom.alerts")


class ActionWriter:
    """``homes``: the rules' configurations (each action's site), read when writing."""

    def __init__(self, sessions: sessionmaker[Session], gate: WriteGate, table: EscalationTable,
                 clock: Callable[[], float], homes: Callable[[], Mapping[str, engine.HomeConfig]],
                 wake: Callable[[], None],
                 vet: Callable[[str, engine.Action], engine.Action] | None = None) -> None:
        self.sessions, self.gate, self.table, self.clock = sessions, gate, table, clock
        self.homes, self.wake = homes, wake
        self.vet = vet  # a last look at each action (homeless.HomelessWatch.vet)
        self.pending: list[tuple[str, engine.Action]] = []
        self._ready = asyncio.Event()

    def queue(self, home: str, actions: list[engine.Action]) -> None:
        """Hand actions to the writer task (the database is never touched here)."""
        if actions:
            self.pending.extend((home, a) for a in actions)
            self._ready.set()

    def _write(self, items: list[tuple[str, engine.Action]]) -> None:
        at_now = datetime.fromtimestamp(self.clock(), UTC)
        homes = self.homes()
        with self.sessions.begin() as s:
            for home, taken in items:
                cfg = homes[home]
                action = taken if self.vet is None else self.vet(home, taken)
                at = datetime.fromtimestamp(action.at_ms / 1000, UTC) if action.at_ms else at_now
                if isinstance(action, engine.Raise):
                    ev_ts = (datetime.fromtimestamp(action.event_ts_ms / 1000, UTC)
                             if action.event_ts_ms is not None else None)
                    lc.raise_alert(s, site=cfg.site, home=home, rule=action.rule,
                                   priority=action.priority, at=at, table=self.table,
                                   device=action.device, detail=dict(action.detail),
                                   event_key=action.event_key, event_ts=ev_ts)
                elif isinstance(action, engine.Clear):
                    lc.auto_resolve(s, cfg.site, home, action.rule, at, action.reason)
                elif isinstance(action, engine.Suppressed):
                    s.add(Suppression(home_id=home, rule=action.rule.value, at=at,
                                      reason=action.reason[:200]))
                elif isinstance(action, engine.Watch):
                    s.add(WatchItem(site_id=cfg.site, home_id=home, rule=action.rule.value,
                                    at=at, reasons={"en": list(action.reasons),
                                                    "ko": list(action.reasons_ko)},
                                    device_id=action.device))

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await pause(self._ready, 1.0)
            self._ready.clear()
            await self.flush(stopping)

    async def flush(self, stopping: asyncio.Event) -> None:
        """Write what is queued; on a database outage keep it all for the next pass
        (after a second, or less if ``stopping`` is set)."""
        items, self.pending = self.pending, []
        if not items:
            return
        try:
            await self.gate.run(lambda: self._write(items))
        except Exception:
            # One at a time, so one action that cannot be stored (a bug) does not
            # hold up the others; a database outage keeps them all for the next pass.
            log.exception("could not store %d rule actions together; one by one", len(items))
            retry: list[tuple[str, engine.Action]] = []
            for item in items:
                try:
                    await self.gate.run(partial(self._write, [item]))
                except Exception:
                    log.exception("rule action %s for home %s not stored", item[1], item[0])
                    retry.append(item)
            if len(retry) == len(items):
                self.pending[:0] = retry  # nothing went through: the database is away
                await pause(stopping, 1.0)
        self.wake()
