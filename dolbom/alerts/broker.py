"""The broker as this service's two sessions see it (the stream and, inline, the alarm
session): each session's ``mqtt_up`` metric, the broker's health as a dependency, and
the rules' deafness: from a drop of either session until the stream is back, verdicts on
silence are held and no device is judged lost for it (TESTPLAN F-03)."""

from __future__ import annotations

from collections.abc import Callable

from dolbom.alerts.health import ServiceAlerts
from dolbom.alerts.metrics import AlertsMetrics
from dolbom.alerts.states import RuleStates


class Broker:
    """``stream_connected``: whether the stream session is connected now."""

    def __init__(self, metrics: AlertsMetrics, deps: ServiceAlerts, rules: RuleStates,
                 stream_connected: Callable[[], bool]) -> None:
        self.metrics, self.deps, self.rules = metrics, deps, rules
        self.stream_connected = stream_connected

    async def failed(self) -> None:
        self.rules.deaf = True  # by either session: the devices cannot reach it either
        await self.deps.failed("broker")

    async def ok(self) -> None:
        if self.rules.deaf and self.stream_connected():
            self.rules.heard_again()
        await self.deps.ok("broker")

    async def up(self, session: str) -> None:
        self.metrics.mqtt_up.labels(session).set(1)
        await self.ok()

    async def down(self, session: str) -> None:
        self.metrics.mqtt_up.labels(session).set(0)
        await self.failed()
