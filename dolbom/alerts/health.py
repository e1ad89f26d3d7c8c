"""Is a dependency down long enough to tell the operators? (DESIGN.md §5, technical)

A broker or InfluxDB that stops answering for ``down_after_s`` raises one
``service_unreachable`` alert per site; it clears itself when the service answers
again. Short blips (a broker restart, a slow write) raise nothing: every false
alarm costs somebody's attention. ``DependencyWatch`` is the bookkeeping, pure over an
injected time; ``ServiceAlerts`` raises and clears the alerts it calls for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.gate import WriteGate
from dolbom.alerts.metrics import AlertsMetrics
from dolbom.alerts.model import EscalationTable, Priority, Rule

log = logging.getLogger("dolbom.alerts")


@dataclass
class DependencyWatch:
    down_after_s: float
    _since: dict[str, float] = field(default_factory=dict)
    _reported: set[str] = field(default_factory=set)

    def failed(self, name: str, now: float) -> bool:
        """A failed attempt at ``now``; True exactly once, when it is time to raise."""
        since = self._since.setdefault(name, now)
        if name not in self._reported and now - since >= self.down_after_s:
            self._reported.add(name)
            return True
        return False

    def ok(self, name: str) -> bool:
        """The dependency answered; True if an alert was raised for it (clear it now)."""
        self._since.pop(name, None)
        if name in self._reported:
            self._reported.discard(name)
            return True
        return False

    def unreport(self, name: str) -> None:
        """Raising the alert failed: say True again at the next failure."""
        self._reported.discard(name)

    def down(self) -> dict[str, float]:
        """Dependencies failing now, with the time of their first failure."""
        return dict(self._since)


class ServiceAlerts:
    """A dependency's attempts as the service reports them: its ``service_up`` metric, and
    one ``service_unreachable`` alert per site (``sites``: those of the homes now) once
    ``watch`` says it is down long enough, cleared when it answers again."""

    def __init__(self, watch: DependencyWatch, metrics: AlertsMetrics,
                 sessions: sessionmaker[Session], gate: WriteGate, table: EscalationTable,
                 clock: Callable[[], float], sites: Callable[[], Iterable[str]],
                 wake: Callable[[], None]) -> None:
        self.watch, self.metrics, self.sessions, self.gate = watch, metrics, sessions, gate
        self.table, self.clock, self.sites, self.wake = table, clock, sites, wake

    async def failed(self, name: str) -> None:
        self.metrics.service_up.labels(name).set(0)
        if self.watch.failed(name, self.clock()):
            log.error("%s unreachable for %.0f s: technical alert raised", name,
                      self.watch.down_after_s)
            await self._service_alert(name, down=True)

    async def ok(self, name: str) -> None:
        self.metrics.service_up.labels(name).set(1)
        if self.watch.ok(name):
            log.info("%s answers again: technical alert cleared", name)
            await self._service_alert(name, down=False)

    async def _service_alert(self, name: str, *, down: bool) -> None:
        """One ``service_unreachable`` alert per site (each site's operators are told)."""
        sites = sorted(set(self.sites()))
        at = datetime.fromtimestamp(self.clock(), UTC)

        def write() -> None:
            with self.sessions.begin() as s:
                for site in sites:
                    if down:
                        lc.raise_alert(s, site=site, home=None,
                                       rule=Rule.SERVICE_UNREACHABLE, priority=Priority.LOW,
                                       at=at, table=self.table, detail={"service": name},
                                       subject=name)
                    else:
                        lc.auto_resolve(s, site, None, Rule.SERVICE_UNREACHABLE, at,
                                        f"{name} answers again", subject=name)

        try:
            await self.gate.run(write)
        except Exception:
            log.exception("could not store the %s alert for %s", "raise" if down else "clear",
                          name)
            if down:  # try again at the next failure
                self.watch.unreport(name)
            return
        self.wake()
