"""The alerts service: the event stream and timers → rules → alerts → notifications.

    alarm session  (QoS 1, persistent, life-safety events only; dolbom/alerts/alarm/,
                   in the alarm process unless ``alarm_process`` is inline: its own
                   command, or spawned and watched by this one: supervisor.py)
        → journal + alert + outbox rows, committed
        → `ack` to the device (DESIGN.md §3: only after the event is durably journalled)
        → PUBACK to the broker
    stream session (QoS 0: activity, telemetry, status; stream.py) → engine (states.py)
                   → actions → database (actions.py)
    timers         deadlines per home in a heap (300,000 homes are never polled; timers.py)
    escalations    due steps of unacknowledged welfare and technical alerts (re-notify,
                   escalate); those of life-safety alerts: the alarm process's own
                   (escalations.py)
    outbox         notifications, at least once, with fallback (life-safety notices:
                   the alarm process's own outbox worker)
    exporter       alert transitions, response times and home modes → InfluxDB
                   (dashboards; export.py)
    registry       homes, devices and thresholds re-read every 30 s (homes.py); rule
                   state saved every ``state_flush_s`` and at shutdown (persist.py)
    health         the broker (broker.py) and InfluxDB as dependencies (health.py)

The alarm path never waits on InfluxDB. Rule state is read back at start: a home that
went silent while the service was down is caught at the first timer pass after the
restart. This module makes these parts, connects them, runs them and stops them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from dolbom.alerts import engine
from dolbom.alerts.actions import ActionWriter
from dolbom.alerts.alarm.journal import Route
from dolbom.alerts.alarm.path import AlarmPath
from dolbom.alerts.broker import Broker
from dolbom.alerts.devmap import DeviceMap
from dolbom.alerts.escalations import Escalations
from dolbom.alerts.export import Exporter
from dolbom.alerts.gate import WriteGate
from dolbom.alerts.health import DependencyWatch, ServiceAlerts
from dolbom.alerts.homeless import HomelessDevices
from dolbom.alerts.homes import RegistrySync
from dolbom.alerts.leader import Lease
from dolbom.alerts.metrics import AlertsMetrics, measure_loop_lag
from dolbom.alerts.model import EscalationTable
from dolbom.alerts.notify.base import Channel
from dolbom.alerts.notify.factory import aclose_all
from dolbom.alerts.outbox import outbox_for
from dolbom.alerts.persist import StateSaver
from dolbom.alerts.settings import AlertsSettings
from dolbom.alerts.states import RuleStates
from dolbom.alerts.stream import Stream
from dolbom.alerts.supervisor import AlarmSupervisor
from dolbom.alerts.timers import run_timers
from dolbom.influx.writer import InfluxWriter
from dolbom.metrics_http import serve_metrics
from dolbom.mqtt import Client
from dolbom.protocol import Topics
from dolbom.registry.db import session_factory


class AlertService:
    def __init__(self, settings: AlertsSettings, *, clock: Callable[[], float] = time.time,
                 channels: Mapping[str, Channel] | None = None,
                 table: EscalationTable | None = None) -> None:
        o = settings.alerts
        self.settings = settings
        self.table = table = table or o.escalation_table()
        self.topics = Topics(settings.mqtt.topic_prefix)
        self.sessions = sessions = session_factory(settings.database_url)
        self.metrics = metrics = AlertsMetrics()
        self.gate = gate = WriteGate()  # this process's database writes, life-safety first
        self.stopping = asyncio.Event()
        self.outbox = outbox_for(settings, sessions, channels, clock=clock, table=table,
                                 metrics=metrics, gate=gate)
        wake = self.outbox.wake.set
        # devices in no home (a corridor detector, a gateway of several flats): their loss
        self.homeless = HomelessDevices(sessions, gate, table, clock, o.cell)
        self.actions = ActionWriter(sessions, gate, table, clock, lambda: self.rules.homes,
                                    wake, self.homeless.watch.vet)
        self.rules = rules = RuleStates(clock, self.actions.queue)
        self.registry = RegistrySync(sessions, rules, clock, o.cell)  # only its cell's homes
        self.saver = StateSaver(sessions, gate, rules, clock)
        self.deps = DependencyWatch(o.dependency_down_after_s)
        alerts = ServiceAlerts(self.deps, metrics, sessions, gate, table, clock,
                               lambda: (cfg.site for cfg in rules.homes.values()), wake)
        self.stream = Stream(settings, self.topics, rules, Broker(
            metrics, alerts, rules, lambda: self.stream.connected), self.homeless.watch)
        self._stream_synced = 0  # stream.count as last added to the metric
        # Life-safety escalations too only when this process runs the alarm path (inline),
        # or the alarm process does (``outbox.of_class``: never both for one alert).
        self.escalations = Escalations(sessions, gate, table, clock, wake,
                                       high=None if o.alarm_process == "inline" else False)
        self.writer = InfluxWriter(settings.influx)
        self.exporter = Exporter(sessions, self.writer, clock, lambda: rules.homes,
                                 partial(alerts.ok, "influxdb"),
                                 partial(alerts.failed, "influxdb"))
        self.supervisor = AlarmSupervisor(settings, metrics)  # alarm_process=spawn
        # One active rules process per cell (PostgreSQL); a standby waits (leader.py).
        self.lease = Lease(settings.database_url, f"rules:{o.cell}")
        # In this process when alarm_process is inline; otherwise unused.
        self.alarm = AlarmPath(settings, sessions, clock=clock, table=table, gate=gate,
                               metrics=metrics, wake=wake, route=rules.route,
                               lookup=self._lookup)

    async def _lookup(self, device: str) -> Route | None:
        await self.registry.refresh()  # a device added since the last registry read
        return self.rules.route(device)

    def _sync_metrics(self) -> None:
        m = self.metrics
        m.stream_messages.inc(self.stream.count - self._stream_synced)
        self._stream_synced = self.stream.count
        m.homes.set(len(self.rules.homes))
        m.timer_heap.set(len(self.rules.timers))

    def health(self) -> tuple[bool, dict[str, Any]]:
        if not self.lease.active:  # standing by: alive, its alarm process watched
            pid = self.supervisor.pid() if self.settings.alerts.alarm_process == "spawn" else 0
            return True, {"role": "standby", "alarm_process": pid}
        down = self.deps.down()
        stream = self.stream.connected
        detail: dict[str, Any] = {"role": "active", "stream_session": stream,
                                  "homes": len(self.rules.homes),
                                  "notices_sent": self.outbox.sent, "failing": sorted(down)}
        mode = self.settings.alerts.alarm_process
        if mode == "spawn":
            # its session and events: the alarm process's own /health
            pid = self.supervisor.pid()
            alive = bool(pid)
            detail["alarm_process"] = pid
        elif mode == "inline":
            alive = self.alarm.connected
            detail["alarm_session"] = alive
            detail["life_safety_events"] = self.alarm.journalled
        else:  # external: the deployment runs it and watches its /health
            alive = True
        return alive and stream and not down, detail

    async def run(self) -> None:
        # The alarm process first: it journals alarms while this one still loads the homes
        # (on a standby machine it stands by on its own lease).
        alarms = (asyncio.create_task(self.supervisor.run(self.stopping), name="alarm-process")
                  if self.settings.alerts.alarm_process == "spawn" else None)
        o = self.settings.alerts
        runner = await serve_metrics(o.metrics_host, o.metrics_port, self.metrics.registry,
                                     self.health, before_scrape=self._sync_metrics)
        try:
            if await self.lease.acquire(self.stopping):
                await self._run(alarms)
        finally:
            self.lease.release()
            if runner is not None:
                await runner.cleanup()
            if alarms is not None:
                self.stopping.set()
                await alarms

    async def _run(self, alarms: asyncio.Task[None] | None) -> None:
        await self.registry.load()
        o, stopping, broker = self.settings.alerts, self.stopping, self.stream.broker
        async with self.writer:
            try:
                async with asyncio.TaskGroup() as tg:
                    # losing the lease (LeaseLost) stops everything here at once
                    tg.create_task(self.lease.hold(stopping), name="lease")
                    tg.create_task(measure_loop_lag(self.metrics.loop_lag, stopping),
                                   name="loop-lag")
                    if alarms is not None:
                        # a supervisor that fails takes the service down with it, loudly
                        tg.create_task(_watch(alarms), name="alarm-process")
                    elif o.alarm_process == "inline":
                        tg.create_task(self.alarm.session(stopping, on_up=broker.ok,
                                                          on_down=broker.failed),
                                       name="alarm-session")
                        tg.create_task(self.alarm.worker(stopping), name="alarm-worker")
                    tg.create_task(self.stream.run(stopping), name="stream-session")
                    tg.create_task(run_timers(self.rules.run_timers, stopping, o.tick_s),
                                   name="timers")
                    tg.create_task(self.actions.run(stopping), name="actions")
                    tg.create_task(self.escalations.run(stopping, o.tick_s), name="escalations")
                    # life-safety notices: the alarm process's outbox when there is one
                    tg.create_task(self.outbox.run(
                        stopping, o.outbox_poll_s,
                        (True, False) if o.alarm_process == "inline" else (False,)),
                        name="outbox")
                    tg.create_task(self.saver.run(stopping, o.state_flush_s), name="state")
                    tg.create_task(self.registry.run(stopping), name="registry")
                    tg.create_task(self.homeless.run(stopping, o.tick_s), name="homeless")
                    tg.create_task(self.exporter.run(stopping, o.export_s), name="exporter")
            finally:
                if self.lease.active:  # fenced: the new active owns the state now
                    await self.actions.flush(stopping)
                    await self.saver.flush()
                await aclose_all(self.outbox.channels)

    # What the chaos tests and the benchmarks read of the parts.
    @property
    def homes(self) -> dict[str, engine.HomeConfig]:
        return self.rules.homes

    @property
    def states(self) -> dict[str, engine.HomeState]:
        return self.rules.states

    @property
    def device_home(self) -> DeviceMap:
        return self.rules.device_home

    @property
    def _dirty(self) -> set[str]:
        return self.rules.dirty

    def _adopt(self, homes: dict[str, engine.HomeConfig], device_home: DeviceMap,
               saved: Mapping[str, Any], heard: Mapping[str, Sequence[int | None]]) -> None:
        self.rules.adopt(homes, device_home, saved, heard)

    def observe(self, home: str, obs: engine.Observation) -> list[engine.Action]:
        return self.rules.observe(home, obs)

    def run_timers(self, budget: int | None = None) -> int:
        return self.rules.run_timers(budget)

    @property
    def stream_client(self) -> Client | None:
        return self.stream.client

    @property
    def alarm_client(self) -> Client | None:
        return self.alarm.client

    @property
    def alarms_journalled(self) -> int:
        return self.alarm.journalled


async def _watch(task: asyncio.Task[None]) -> None:
    """Wait for ``task`` without cancelling it when the waiter is cancelled (it stops
    by itself when the service stops)."""
    await asyncio.shield(task)
