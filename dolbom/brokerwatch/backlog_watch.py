"""``dolbom broker watch-backlog``: a cell's broker holding more and more messages for a
client that does not take them (a dead ingest worker's ``$share``, a stopped alerts
service) becomes metrics and one technical ``broker_backlog`` alert (docs/scale.md).

The shell around ``dolbom.brokerwatch.backlog``: one MQTT session, as the operator
account (which may read these ``$SYS`` topics and no other), takes the broker's figures;
``BacklogTrend`` says when to raise, refresh or clear; the alert goes through
``lifecycle.raise_alert`` / ``auto_resolve`` like every technical alert. One alert per
cell, whatever its number of sites: it is filed under the cell's first site (its
``subject`` is the cell), and its operators (admins) are told once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.model import EscalationTable, Priority, Rule
from dolbom.brokerwatch.backlog import (
    SYS_BYTES,
    SYS_DISCONNECTED,
    SYS_DROPPED,
    SYS_RETAINED,
    SYS_STORED,
    SYS_TOPICS,
    BacklogPolicy,
    BacklogTrend,
    Report,
    SysFigures,
    Verdict,
)
from dolbom.metrics_http import serve_metrics
from dolbom.mqtt import Endpoint, MqttSession, Received
from dolbom.registry.models import CELL_PATTERN, DEFAULT_CELL, Alert, Site
from dolbom.settings import BaseServiceSettings

log = logging.getLogger(__name__)

RULE = Rule.BROKER_BACKLOG


class BacklogOptions(BaseModel):
    # The cell whose broker this is (DOLBOM_MQTT__* names the broker): the alert's subject.
    cell: str = Field(DEFAULT_CELL, pattern=CELL_PATTERN)
    # Messages held for clients (the store's count less the retained ones): one alert when
    # they stay at or above `threshold` and grow by `min_growth` or more, never falling
    # back, for `sustain_s`; cleared below `clear_below` (default: half the threshold);
    # the open alert's figures refreshed at most every `repeat_s`. The defaults are above
    # what live workers keep in flight, and raise well before a dead worker's queue meets
    # the broker's max_queued_messages (2,000,000 a client, dolbom.stack): at a full
    # cell's 9,300 msg/s shared by two workers, 10,000 held after 2 s, the alert at about
    # 2 min, the limit at about 7 min.
    threshold: int = Field(10_000, ge=1)
    sustain_s: float = Field(120.0, gt=0, le=86_400)
    min_growth: int = Field(1_000, ge=1)
    clear_below: int | None = Field(None, ge=0)
    repeat_s: float = Field(600.0, gt=0, le=86_400)
    # The watcher's MQTT client id (default: dolbom-backlog-<cell>); a clean session.
    client_id: str | None = Field(None, min_length=1, max_length=64)
    # Prometheus /metrics and /health (port 0: none).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9112, ge=0, le=65535)

    @model_validator(mode="after")
    def _marks(self) -> BacklogOptions:
        if self.clear_below is not None and self.clear_below >= self.threshold:
            raise ValueError(f"backlog.clear_below ({self.clear_below}) must be below "
                             f"backlog.threshold ({self.threshold})")
        return self

    @property
    def policy(self) -> BacklogPolicy:
        clear = self.clear_below if self.clear_below is not None else self.threshold // 2
        return BacklogPolicy(self.threshold, self.sustain_s, self.min_growth, clear,
                             self.repeat_s)

    @property
    def mqtt_client_id(self) -> str:
        return self.client_id or f"dolbom-backlog-{self.cell}"


class BacklogWatchSettings(BaseServiceSettings):
    backlog: BacklogOptions = BacklogOptions()


class BacklogMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.held = Gauge("dolbom_broker_messages_held",
                          "Messages the broker holds for clients (its store less the retained "
                          "ones): in flight, or queued for absent persistent sessions",
                          registry=r)
        self.stored = Gauge("dolbom_broker_store_messages",
                            "Messages in the broker's store ($SYS/broker/store/messages/count)",
                            registry=r)
        self.stored_bytes = Gauge("dolbom_broker_store_bytes",
                                  "Payload bytes in the broker's store", registry=r)
        self.retained = Gauge("dolbom_broker_retained_messages",
                              "Retained messages in the broker", registry=r)
        self.disconnected = Gauge("dolbom_broker_clients_disconnected",
                                  "Persistent sessions whose client is away (sleeping "
                                  "devices too)", registry=r)
        self.dropped = Gauge("dolbom_broker_messages_dropped",
                             "Messages the broker dropped since it started: a full client "
                             "queue (max_queued_messages)", registry=r)
        self.up = Gauge("dolbom_broker_sys_up",
                        "1 while the watcher is connected to the broker", registry=r)
        self.alert_open = Gauge("dolbom_broker_backlog_alert_open",
                                "1 while a broker_backlog alert is open for this cell",
                                registry=r)
        self.malformed = Counter("dolbom_broker_sys_malformed_total",
                                 "$SYS messages that were not a count", registry=r)
        self.reports = Counter("dolbom_broker_backlog_reports_total",
                               "What the watcher did: raised, repeated (refreshed) or cleared "
                               "the alert; not_open (a person resolved it while the backlog "
                               "stayed); no_site (the cell has no site to file it under)",
                               ["action"], registry=r)
        for action in ("raised", "repeated", "cleared", "not_open", "no_site"):
            self.reports.labels(action)


_GAUGE_OF = {SYS_STORED: "stored", SYS_BYTES: "stored_bytes", SYS_RETAINED: "retained",
             SYS_DISCONNECTED: "disconnected", SYS_DROPPED: "dropped"}


class BacklogWatch:
    """Follows one broker's ``$SYS`` figures and tells operators of a growing backlog."""

    def __init__(self, options: BacklogOptions, endpoint: Endpoint,
                 sessions: sessionmaker[Session], *, metrics: BacklogMetrics | None = None,
                 clock: Callable[[], float] = time.time,
                 table: EscalationTable | None = None) -> None:
        self.options = options
        self.endpoint = endpoint
        self.sessions = sessions
        self.metrics = metrics or BacklogMetrics()
        self.clock = clock
        self.table = table or EscalationTable()
        self.figures = SysFigures()
        self.trend = BacklogTrend(options.policy)
        self.session = MqttSession(endpoint, options.mqtt_client_id,
                                   [(t, 0) for t in SYS_TOPICS], on_message=self._message,
                                   on_up=self._up, on_down=self._down,
                                   name=f"backlog watch ({options.cell})")
        self.reports: asyncio.Queue[Report] = asyncio.Queue()
        self.stopping = asyncio.Event()

    # -- the figures ---------------------------------------------------------------------
    def take(self, topic: str, payload: bytes) -> Report | None:
        """One ``$SYS`` message: the metrics, and what the trend calls for."""
        if not self.figures.update(topic, payload):
            if topic in _GAUGE_OF:
                self.metrics.malformed.inc()
            return None
        value = getattr(self.figures, _GAUGE_OF[topic])
        getattr(self.metrics, _GAUGE_OF[topic]).set(value)
        held = self.figures.held
        if held is not None:
            self.metrics.held.set(held)
        if held is None or topic != SYS_STORED:
            # One sample per change of the store's count: the broker publishes it every
            # sys_interval when it moved (the retained count seldom moves).
            return None
        report = self.trend.observe(self.clock(), held)
        self.metrics.alert_open.set(1 if self.trend.raised else 0)
        return report

    def _message(self, msg: Received) -> None:
        report = self.take(msg.topic, msg.payload)
        if report is not None:
            self.reports.put_nowait(report)

    async def _up(self) -> None:
        self.metrics.up.set(1)

    async def _down(self) -> None:
        # No figures while away: the window starts again with the next ones.
        self.metrics.up.set(0)
        self.trend.reset()

    # -- the alert -----------------------------------------------------------------------
    def _open_alert(self, s: Session) -> Alert | None:
        """This cell's open alert, under whichever site it was filed."""
        for a in s.scalars(select(Alert).where(Alert.rule == RULE.value,
                                               Alert.open_key.is_not(None))):
            if a.open_key == lc.open_key(a.site_id, None, RULE.value, self.options.cell):
                return a
        return None

    def load_open(self) -> bool:
        """At start: an alert left open by an earlier run is this run's to clear."""
        with self.sessions() as s:
            found = self._open_alert(s) is not None
        self.trend.raised = found
        self.metrics.alert_open.set(1 if found else 0)
        return found

    def tell(self, r: Report) -> str:
        """Store what ``r`` calls for; the action taken."""
        cell = self.options.cell
        at = datetime.fromtimestamp(r.at, UTC)
        with self.sessions.begin() as s:
            alert = self._open_alert(s)
            if r.verdict is Verdict.CLEAR:
                if alert is None:
                    return "not_open"
                lc.auto_resolve(s, alert.site_id, None, RULE, at,
                                f"the broker holds {r.held} messages for clients again",
                                subject=cell)
                log.info("cell %s: broker_backlog alert %d cleared (%d messages held)", cell,
                         alert.id, r.held)
                return "cleared"
            if r.verdict is Verdict.REPEAT and alert is None:
                # A person resolved it while the backlog stayed: not raised again before
                # the backlog has drained once.
                return "not_open"
            site = alert.site_id if alert is not None else s.scalar(
                select(Site.id).where(Site.cell == cell).order_by(Site.id).limit(1))
            if site is None:
                log.warning("cell %s: the broker holds %d messages and growing, but the cell "
                            "has no site to file an alert under", cell, r.held)
                return "no_site"
            f = self.figures
            detail: dict[str, Any] = {
                "cell": cell, "held": r.held, "stored": f.stored, "retained": f.retained,
                "bytes": f.stored_bytes, "disconnected": f.disconnected, "dropped": f.dropped,
                "threshold": self.options.threshold,
                "since": datetime.fromtimestamp(r.since, UTC).isoformat(timespec="seconds"),
            }
            if r.verdict is Verdict.RAISE:
                detail.update(growth=r.growth, window_s=self.options.sustain_s)
            res = lc.raise_alert(s, site=site, home=None, rule=RULE, priority=Priority.LOW,
                                 at=at, table=self.table, detail=detail, subject=cell)
        if res.created:
            log.warning("cell %s: the broker holds %d messages for clients, %d more than "
                        "%.0f s ago: broker_backlog alert %d raised", cell, r.held, r.growth,
                        r.at - r.since, res.alert_id)
            return "raised"
        return "repeated"

    async def _writer(self) -> None:
        """Store the reports in order, off the event loop (they are rare: a raise, a
        clear, a refresh every repeat_s at most)."""
        while not self.stopping.is_set():
            get = asyncio.ensure_future(self.reports.get())
            stop = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait([get, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not get.done():
                get.cancel()
                return
            report = get.result()
            try:
                action = await asyncio.to_thread(self.tell, report)
            except Exception:
                # The database is away: the next sample tries again.
                log.exception("could not store the broker_backlog %s", report.verdict.value)
                self.trend.failed(report)
                self.metrics.alert_open.set(1 if self.trend.raised else 0)
                continue
            self.metrics.reports.labels(action).inc()

    # -- the loop ------------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        ok = self.session.connected
        return ok, {"broker": f"{self.endpoint.host}:{self.endpoint.port}",
                    "cell": self.options.cell, "connected": ok, "held": self.figures.held,
                    "alert_open": self.trend.raised}

    async def run(self) -> None:
        """Watch until ``stopping`` is set; the metrics endpoint beside it."""
        o = self.options
        await asyncio.to_thread(self.load_open)
        runner = await serve_metrics(o.metrics_host, o.metrics_port, self.metrics.registry,
                                     self.health)
        tasks = [asyncio.create_task(self.session.run(self.stopping), name="backlog-mqtt"),
                 asyncio.create_task(self._writer(), name="backlog-writer")]
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.stopping.set()
            stop.cancel()
            done, pending = await asyncio.wait(tasks, timeout=10)
            for t in pending:
                t.cancel()
            if runner is not None:
                await runner.cleanup()
        for t in done:
            t.result()  # a task that failed says why
