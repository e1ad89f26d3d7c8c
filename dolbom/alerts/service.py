"""The alerts service: the event stream and timers → rules → alerts → notifications.

    alarm session  (QoS 1, persistent, life-safety events only; dolbom/alerts/alarm/,
                   in the alarm process unless ``alarm_process`` is inline: its own
                   command, or spawned and watched by this one)
        → journal + alert + outbox rows, committed
        → `ack` to the device (DESIGN.md §3: only after the event is durably journalled)
        → PUBACK to the broker
    stream session (QoS 0: activity, telemetry, status) → engine → actions → database
    timers         deadlines per home in a heap (300,000 homes are never polled)
    escalations    due steps of unacknowledged welfare and technical alerts (re-notify,
                   escalate); those of life-safety alerts: the alarm process's own
    outbox         notifications, at least once, with fallback (life-safety notices:
                   the alarm process's own outbox worker)
    exporter       alert transitions, response times and home modes → InfluxDB
                   (dashboards; dolbom/alerts/export.py)

The alarm path never waits on InfluxDB. Rule state is written to the database every
``state_flush_s`` and at shutdown, and read back at start: a home that went silent
while the service was down is caught at the first timer pass after the restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import lru_cache, partial
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from dolbom.alerts import engine, export, feed
from dolbom.alerts import lifecycle as lc
from dolbom.alerts.alarm.journal import Route
from dolbom.alerts.alarm.lock import ALREADY_RUNNING, alarm_lock_path, lock_holder
from dolbom.alerts.alarm.path import AlarmPath
from dolbom.alerts.alarm.serve import spawn
from dolbom.alerts.devmap import DeviceMap
from dolbom.alerts.gate import WriteGate
from dolbom.alerts.health import DependencyWatch
from dolbom.alerts.metrics import AlertsMetrics, measure_loop_lag
from dolbom.alerts.model import (
    THRESHOLD_SETTINGS,
    EscalationTable,
    Outcome,
    Priority,
    Rule,
    Thresholds,
    thresholds_from,
)
from dolbom.alerts.notify.base import Channel
from dolbom.alerts.notify.factory import aclose_all
from dolbom.alerts.outbox import escalate_due, outbox_for
from dolbom.alerts.settings import AlertsSettings
from dolbom.influx.writer import InfluxWriter
from dolbom.metrics_http import serve_metrics
from dolbom.mqtt import Backoff, Client, MqttSession, Received
from dolbom.protocol import Topics
from dolbom.registry.db import session_factory
from dolbom.registry.models import (
    Alert,
    Device,
    Home,
    HomeRuleState,
    Resident,
    ResidentSetting,
    Suppression,
    WatchItem,
)

log = logging.getLogger("dolbom.alerts")
STATE_CHUNK = 250  # homes per rule-state transaction (a short hold of the write lock)
TIMER_BUDGET = 500  # timer heap entries handled before yielding to the event loop
SUMMARY_EVERY_S = 300.0  # response-time summaries to InfluxDB, at least this often
ADOPTED_CHECK_S = 1.0  # an alarm process this one did not start: checked this often


def _thresholds(overrides: Mapping[str, Any], wandering: bool) -> Thresholds:
    """Per-resident settings (registry ``resident_settings``) over the defaults."""
    return thresholds_from({k: v for k, v in overrides.items() if k in THRESHOLD_SETTINGS},
                           wandering, on_bad=lambda why: log.warning("ignoring %s", why))


def load_homes(s: Session, known: Mapping[str, engine.HomeConfig] | None = None,
               known_devices: DeviceMap | None = None,
               ) -> tuple[dict[str, engine.HomeConfig], DeviceMap]:
    """Every home's rule configuration, and device → home.

    Memory per home matters at 300,000 homes (DESIGN.md §7: ≤ 1 KB): equal thresholds
    share one object, repeated strings (kinds, power, site ids) are interned, and a
    configuration equal to the one in ``known`` (the last read) is that very object, so
    a re-read keeps one copy of each home's strings. The device map keeps no device ids
    of its own (``DeviceMap``: it finds them in the configurations); it reuses the table
    of ``known_devices`` (the last read's) if no home's devices changed. Plain column
    rows, not ORM objects: the service re-reads this every ``registry_refresh_s``, in a
    worker thread, while the alarm path runs in the same process.
    """
    known = known or {}
    devices: dict[str, list[engine.DeviceInfo]] = {}
    for dev_id, dev_home, kind, power, hb_s in s.execute(
            select(Device.id, Device.home_id, Device.kind, Device.power, Device.hb_s)
            .where(Device.revoked_at.is_(None), Device.home_id.is_not(None))):
        assert dev_home is not None  # the query's where clause
        devices.setdefault(dev_home, []).append(
            engine.DeviceInfo(dev_id, sys.intern(kind), sys.intern(str(power)), int(hb_s)))
    overrides: dict[str, dict[str, Any]] = {}
    wandering: dict[str, bool] = {}
    for home_id, flag in s.execute(select(Resident.home_id, Resident.wandering)):
        wandering[home_id] = wandering.get(home_id, False) or bool(flag)
        overrides.setdefault(home_id, {})
    for key, value, home_id in s.execute(
            select(ResidentSetting.key, ResidentSetting.value, Resident.home_id)
            .join(Resident, Resident.id == ResidentSetting.resident_id)):
        overrides.setdefault(home_id, {})[key] = value
    shared: dict[Thresholds, Thresholds] = {}
    homes: dict[str, engine.HomeConfig] = {}
    for row_home, site_id, mode in s.execute(select(Home.id, Home.site_id, Home.mode)):
        t = _thresholds(overrides.get(row_home, {}), wandering.get(row_home, False))
        cfg = engine.HomeConfig(
            site=sys.intern(site_id), home=row_home, mode=sys.intern(str(mode)),
            thresholds=shared.setdefault(t, t), devices=devices.get(row_home, ()))
        old = known.get(row_home)
        if old == cfg:  # unchanged: keep the object (and its strings) the service holds
            cfg = old
        homes[cfg.home] = cfg
    return homes, DeviceMap(homes.values(), previous=known_devices)


@lru_cache(maxsize=1024)
def _second_ms(second: int) -> int:
    """Second ``second`` in ms, one object per second: a timer heap entry's time. An int
    of ms is 32 B, and 300,000 homes are due within a few minutes (DESIGN.md §7)."""
    return second * 1000


def _state_rows(chunk: list[tuple[str, engine.HomeState]], now: datetime
                ) -> list[dict[str, Any]]:
    return [{"home_id": h, "state": engine.state_to_json(st), "updated_at": now}
            for h, st in chunk]


class AlertService:
    def __init__(self, settings: AlertsSettings, *, clock: Callable[[], float] = time.time,
                 channels: Mapping[str, Channel] | None = None,
                 table: EscalationTable | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.table = table or settings.alerts.escalation_table()
        self.topics = Topics(settings.mqtt.topic_prefix)
        self.sessions = session_factory(settings.database_url)
        self.homes: dict[str, engine.HomeConfig] = {}
        self.device_home = DeviceMap()  # device → home: the stream path, life-safety routing
        self.states: dict[str, engine.HomeState] = {}
        self._deadline: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []
        self._dirty: set[str] = set()
        self._actions: list[tuple[str, engine.Action]] = []
        self._actions_ready = asyncio.Event()
        self.metrics = AlertsMetrics()
        self.gate = WriteGate()  # this process's database writes, life-safety first
        self.deps = DependencyWatch(settings.alerts.dependency_down_after_s)
        self.stream_count = 0
        self._stream_synced = 0
        # While the stream from the broker is down the rules hear nothing, and neither
        # does anyone: verdicts on silence are held, and no device is judged lost for it
        # (TESTPLAN F-03). True from a drop of either session until the stream is back.
        self.deaf = False
        # Outcomes resolved after this are taught to the homes' concerns (learn_outcomes).
        self._outcomes_since = datetime.fromtimestamp(clock(), UTC)
        self.stream_client: Client | None = None
        self.alarm_proc: asyncio.subprocess.Process | None = None  # alarm_process spawn
        self.alarm_adopted: int | None = None  # PID of a running one this one did not start
        self.stopping = asyncio.Event()
        self.outbox = outbox_for(settings, self.sessions, channels, clock=clock,
                                 table=self.table, metrics=self.metrics, gate=self.gate)
        self.writer = InfluxWriter(settings.influx)
        self._export_cursor = 0  # the last alert_events row written to InfluxDB
        self._summary_at = -SUMMARY_EVERY_S  # time.monotonic() of the last summaries
        self._modes_seen: Mapping[str, engine.HomeConfig] = {}  # homes last written
        self._modes_at = 0.0  # self.clock() when every home's mode was last written
        # In this process when alarm_process is inline; otherwise unused.
        self.alarm = AlarmPath(settings, self.sessions, clock=clock, table=self.table,
                               gate=self.gate, metrics=self.metrics, wake=self.outbox.wake.set,
                               route=self._route, lookup=self._lookup)

    @property
    def alarm_client(self) -> Client | None:
        return self.alarm.client

    @property
    def alarms_journalled(self) -> int:
        return self.alarm.journalled

    def now_ms(self) -> int:
        return int(self.clock() * 1000)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # ------------------------------------------------------------------ state
    async def load(self) -> None:
        """Read the registry, the saved rule state and when devices were last heard."""
        def read() -> tuple[dict[str, engine.HomeConfig], DeviceMap, dict[str, Any],
                            dict[str, int]]:
            with self.sessions() as s:
                homes, device_home = load_homes(s)
                # (a Result has .keys(): dict() would take it for a mapping)
                saved: dict[str, Any] = {h: st for h, st in s.execute(
                    select(HomeRuleState.home_id, HomeRuleState.state))}
                # ingest records when each device was last heard, also while we were down
                seen = {d: int(t.timestamp() * 1000) for d, t in s.execute(
                    select(Device.id, Device.last_seen_at)) if t is not None}
            return homes, device_home, saved, seen

        homes, device_home, saved, seen = await asyncio.to_thread(read)
        self._adopt(homes, device_home, saved, seen)

    def _adopt(self, homes: dict[str, engine.HomeConfig], device_home: DeviceMap,
               saved: Mapping[str, Any], seen: Mapping[str, int],
               changed: set[str] | None = None) -> None:
        """Take a registry read: start new homes, re-arm homes whose configuration changed
        (``changed``: those homes, worked out by the caller off the event loop)."""
        now = self.now_ms()
        old = self.homes
        self.homes, self.device_home = homes, device_home
        if changed is None:
            changed = {h for h, cfg in homes.items() if h in self.states and old.get(h) != cfg}
        for home in changed:  # a mode, threshold or device change
            if home in self.states:
                self._schedule(home)
        for home, cfg in homes.items():
            if home in self.states:
                continue
            state = None
            if home in saved:
                try:
                    state = engine.state_from_json(saved[home])
                except Exception:
                    log.exception("saved rule state of home %s unreadable; starting afresh", home)
            if state is None:
                state = engine.initial_state(cfg, now)
            self.states[home] = state
            self._dirty.add(home)  # a new home's clocks start now: save them
            for dev in cfg.ids:
                at = seen.get(dev)
                if at is not None and at <= now:
                    # Only what is newer than the saved state counts; timers that
                    # matured before `at` fire as they would have.
                    self.states[home], actions = engine.observe(cfg, self.states[home],
                                                                engine.Seen(dev, at))
                    self._queue(home, actions)
            self._schedule(home)

    def _schedule(self, home: str) -> None:
        """Keep one heap entry per home at its earliest deadline, rounded up to a second.

        A heartbeat moves a home's deadline later every minute: pushing each move would
        grow the heap without bound, so only an earlier deadline is pushed. Ticking a
        home early is harmless: ``run_timers`` re-arms it at its real deadline. Rounding
        lets the homes due in the same second share one int (``_second_ms``); ticking up
        to a second late changes nothing but when: what matured fires with the time it
        matured.
        """
        real = engine.next_deadline(self.homes[home], self.states[home])
        deadline = None if real is None else _second_ms(-(-real // 1000))
        current = self._deadline.get(home)
        if deadline is not None and (current is None or deadline < current):
            self._deadline[home] = deadline
            heapq.heappush(self._heap, (deadline, home))

    def _apply(self, home: str, state: engine.HomeState, actions: list[engine.Action]) -> None:
        if state is not self.states[home]:
            self.states[home] = state
            self._dirty.add(home)
            self._schedule(home)
        self._queue(home, actions)

    def _queue(self, home: str, actions: list[engine.Action]) -> None:
        """Hand actions to the writer task (the database is never touched here)."""
        if actions:
            self._actions.extend((home, a) for a in actions)
            self._actions_ready.set()

    def observe(self, home: str, obs: engine.Observation) -> list[engine.Action]:
        cfg = self.homes[home]
        state, actions = engine.observe(cfg, self.states[home], obs)
        self._apply(home, state, actions)
        return actions

    def run_timers(self, budget: int | None = None) -> int:
        """Tick homes whose deadline has come, at most ``budget`` heap entries (None: all);
        returns how many entries were taken. Many homes share a deadline (all started
        together): a budget keeps the event loop, and so the alarm path, responsive."""
        if self.deaf:
            return 0  # nothing was heard: no verdict on silence (see _broker_up)
        now = self.now_ms()
        n = taken = 0
        while self._heap and self._heap[0][0] <= now and (budget is None or taken < budget):
            taken += 1
            deadline, home = heapq.heappop(self._heap)
            if self._deadline.get(home) != deadline or home not in self.homes:
                continue  # superseded by an earlier schedule
            del self._deadline[home]
            real = engine.next_deadline(self.homes[home], self.states[home])
            if real is not None and real > now:
                self._schedule(home)  # the deadline moved later since: re-arm
                continue
            state, actions = engine.tick(self.homes[home], self.states[home], now)
            self.states[home] = state
            self._dirty.add(home)
            self._schedule(home)
            self._queue(home, actions)
            n += 1
        return n if budget is None else taken

    # ------------------------------------------------------------------ actions → DB
    def _write_actions(self, items: list[tuple[str, engine.Action]]) -> None:
        at_now = self.now()
        with self.sessions.begin() as s:
            for home, action in items:
                cfg = self.homes[home]
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

    async def action_writer(self) -> None:
        while not self.stopping.is_set():
            await self._wait(self._actions_ready, 1.0)
            self._actions_ready.clear()
            await self.flush_actions()

    async def flush_actions(self) -> None:
        items, self._actions = self._actions, []
        if not items:
            return
        try:
            await self.gate.run(lambda: self._write_actions(items))
        except Exception:
            # One at a time, so one action that cannot be stored (a bug) does not
            # hold up the others; a database outage keeps them all for the next pass.
            log.exception("could not store %d rule actions together; one by one", len(items))
            retry: list[tuple[str, engine.Action]] = []
            for item in items:
                try:
                    await self.gate.run(partial(self._write_actions, [item]))
                except Exception:
                    log.exception("rule action %s for home %s not stored", item[1], item[0])
                    retry.append(item)
            if len(retry) == len(items):
                self._actions[:0] = retry  # nothing went through: the database is away
                await self._sleep(1.0)
        self.outbox.wake.set()

    # ------------------------------------------------------------------ life-safety path
    def _route(self, device: str) -> Route | None:
        cfg = self.device_home.config(device)  # one of self.homes: adopted together
        return None if cfg is None else (cfg.site, cfg.home)

    async def _lookup(self, device: str) -> Route | None:
        await self.refresh()  # a device added since the last registry read
        return self._route(device)

    async def handle_alarm(self, msg: Received) -> None:
        await self.alarm.handle(msg)

    # ------------------------------------------------------------------ stream path
    def _on_stream(self, msg: Received) -> None:
        topic = self.topics.parse(msg.topic)
        if topic is None:
            return
        cfg = self.device_home.config(topic.device)  # one of self.homes: adopted together
        if cfg is None:
            return
        if feed.stream(topic, msg.payload, self.now_ms(), partial(self.observe, cfg.home)):
            self.stream_count += 1

    # ------------------------------------------------------------------ sessions
    async def _broker_up(self, session: str) -> None:
        self.metrics.mqtt_up.labels(session).set(1)
        await self._dependency_ok("broker")

    async def _broker_down(self, session: str) -> None:
        self.metrics.mqtt_up.labels(session).set(0)
        await self._dependency_failed("broker")

    def _heard_again(self) -> None:
        """The stream is back after a drop: what could not be heard meanwhile counts for
        no device's loss; their lost deadlines count again from now (engine.unheard)."""
        now = self.now_ms()
        for home, cfg in self.homes.items():
            state = self.states.get(home)
            if state is None:
                continue
            fresh = engine.unheard(cfg, state, now)
            if fresh is not state:
                self.states[home] = fresh
                self._dirty.add(home)
                self._schedule(home)
        self.deaf = False

    async def alarm_session(self) -> None:
        await self.alarm.session(self.stopping, on_up=partial(self._dependency_ok, "broker"),
                                 on_down=partial(self._dependency_failed, "broker"))

    async def stream_session(self) -> None:
        session = MqttSession(
            self.settings.mqtt.endpoint(), self.settings.alerts.stream_client_id,
            [(self.topics.uplink_filter(), 0)], on_message=self._on_stream,
            on_down=partial(self._broker_down, "stream"))

        async def up() -> None:
            self.stream_client = session.client
            await self._broker_up("stream")

        session.on_up = up
        await session.run(self.stopping)

    async def alarm_supervisor(self) -> None:
        """Keep the alarm process running while this service runs (restarted with
        backoff if it ever exits), and stop it with the service (``alarm_process=spawn``).

        One already running (this service was killed or stopped and started again; the
        alarm process outlives it by design, dolbom/alerts/alarm/) is watched through
        its lock, not started twice, and started again once it is gone."""
        backoff = Backoff(0.5, 15.0)
        lock = alarm_lock_path(self.settings)
        while not self.stopping.is_set():
            holder = await asyncio.to_thread(lock_holder, lock)
            if holder is not None:
                if holder != self.alarm_adopted:
                    log.info("alarm process already running (pid %s): watching it", holder)
                self.alarm_adopted = holder
                await self._sleep(ADOPTED_CHECK_S)
                continue
            if self.alarm_adopted is not None:
                self.metrics.alarm_process_exits.inc()
                log.error("alarm process %d is gone; starting one", self.alarm_adopted)
                self.alarm_adopted = None
            try:
                proc = self.alarm_proc = await spawn(self.settings)
            except (OSError, ConnectionError) as e:  # e.g. it died before reading its settings
                delay = backoff.next_delay()
                log.error("could not start the alarm process (%s); retrying in %.1f s", e, delay)
                await self._sleep(delay)
                continue
            log.info("alarm process started (pid %d)", proc.pid)
            done = asyncio.ensure_future(proc.wait())
            stop = asyncio.ensure_future(self.stopping.wait())
            await asyncio.wait([done, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not done.done():
                proc.terminate()
                try:
                    await asyncio.wait_for(done, 20)
                except TimeoutError:
                    proc.kill()
                    await proc.wait()
                return
            if self.stopping.is_set():
                return
            if proc.returncode == ALREADY_RUNNING:
                continue  # another started first: watch that one
            self.metrics.alarm_process_exits.inc()
            delay = backoff.next_delay()
            log.error("alarm process exited with %s; restarting in %.1f s", proc.returncode,
                      delay)
            await self._sleep(delay)
        await self._stop_adopted(lock)

    async def _stop_adopted(self, lock: Path) -> None:
        """Stop, with this service, the alarm process it found running (it was started for
        an earlier run of this service: ``alarm_process=spawn``). The PID is the lock
        holder's, read while the lock is held, so it is that process."""
        pid = await asyncio.to_thread(lock_holder, lock)
        if not pid or pid != self.alarm_adopted:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(200):  # its own drain takes seconds; 20 s at most
            if await asyncio.to_thread(lock_holder, lock) is None:
                return
            await asyncio.sleep(0.1)
        log.error("alarm process %d did not stop within 20 s", pid)

    # ------------------------------------------------------------------ timers
    async def timers(self) -> None:
        while not self.stopping.is_set():
            while self.run_timers(TIMER_BUDGET) == TIMER_BUDGET:  # noqa: ASYNC110 - a yield
                await asyncio.sleep(0)  # let messages (and alarms) in between
            await self._sleep(self.settings.alerts.tick_s)

    async def escalations(self) -> None:
        while not self.stopping.is_set():
            try:
                await self.run_escalations()
            except Exception:
                log.exception("escalation pass failed; retrying")
            await self._sleep(self.settings.alerts.tick_s)

    async def run_escalations(self) -> int:
        """Re-notify and escalate due alerts: the welfare and technical ones; the
        life-safety ones too only when this process runs the alarm path (inline), or
        the alarm process does (``outbox.of_class``: never both for one alert)."""
        high = None if self.settings.alerts.alarm_process == "inline" else False

        def step() -> int:
            now = self.now()
            with self.sessions.begin() as s:
                return escalate_due(s, now, self.table, high=high)

        n = await self.gate.run(step)
        if n:
            self.outbox.wake.set()
        return n

    async def state_flusher(self) -> None:
        while not self.stopping.is_set():
            await self._sleep(self.settings.alerts.state_flush_s)
            await self.flush_states()

    async def flush_states(self) -> None:
        """Save changed rule state in chunks, one short transaction each.

        At 300,000 homes nearly every home changes between flushes; one transaction
        for all of them would hold the database's write lock for seconds, and a
        life-safety event waiting to be journalled would wait with it.
        """
        dirty, self._dirty = self._dirty, set()
        homes = [h for h in dirty if h in self.states]
        now = self.now()
        for i in range(0, len(homes), STATE_CHUNK):
            # States are immutable values: a worker thread serialises them, not the loop,
            # and not while holding the write gate (an alarm may be waiting for it).
            chunk = [(h, self.states[h]) for h in homes[i:i + STATE_CHUNK]]
            try:
                rows = await asyncio.to_thread(_state_rows, chunk, now)
                await self.gate.run(partial(self._upsert_states, rows))
            except Exception:
                log.exception("could not save rule state; will retry")
                self._dirty.update(homes[i:])
                return

    def _upsert_states(self, rows: list[dict[str, Any]]) -> None:
        with self.sessions.begin() as s:
            insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
            stmt = insert(cast(Table, HomeRuleState.__table__))  # Core: no ORM bulk path
            s.execute(stmt.on_conflict_do_update(
                index_elements=[HomeRuleState.home_id],
                set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at}),
                rows)

    async def refresh(self) -> None:
        """Re-read homes, devices and thresholds (new devices, mode changes).

        A new home's saved state and its devices' last-seen times are read for that
        home only; homes already running keep their state, and unchanged homes their
        configuration object (one copy of its strings, and its states' tag stays shared).
        """
        old, old_devices = self.homes, self.device_home

        def read() -> tuple[dict[str, engine.HomeConfig], DeviceMap, dict[str, Any],
                            dict[str, int], set[str]]:
            with self.sessions() as s:
                homes, device_home = load_homes(s, old, old_devices)
                # compared here, not on the event loop: 300,000 homes take a while
                changed = {h for h, cfg in homes.items() if h in old and old[h] is not cfg}
                new = [h for h in homes if h not in self.states]
                saved: dict[str, Any] = {}
                seen: dict[str, int] = {}
                for i in range(0, len(new), 500):
                    chunk = new[i:i + 500]
                    saved.update({h: st for h, st in s.execute(
                        select(HomeRuleState.home_id, HomeRuleState.state)
                        .where(HomeRuleState.home_id.in_(chunk)))})
                    seen.update({d: int(t.timestamp() * 1000) for d, t in s.execute(
                        select(Device.id, Device.last_seen_at)
                        .where(Device.home_id.in_(chunk))) if t is not None})
            return homes, device_home, saved, seen, changed

        self._adopt(*await asyncio.to_thread(read))

    async def registry_refresher(self) -> None:
        while not self.stopping.is_set():
            await self._sleep(30.0)
            try:
                await self.refresh()
                await self.learn_outcomes()
            except Exception:
                log.exception("registry refresh failed")

    async def learn_outcomes(self) -> int:
        """Outcomes that workers recorded since the last look (on the API or the command
        line) teach each home's concern (``engine.feedback``); returns how many. Outcomes
        recorded while the service was down are not looked for."""
        since = self._outcomes_since

        def read() -> list[tuple[str, str, str, datetime]]:
            with self.sessions() as s:
                return [(h, r, o, t) for h, r, o, t in s.execute(
                    select(Alert.home_id, Alert.rule, Alert.outcome, Alert.resolved_at)
                    .where(Alert.resolved_at > since, Alert.outcome.is_not(None),
                           Alert.home_id.is_not(None),
                           Alert.rule.in_([r.value for r in engine.FEEDBACK_RULES]))
                    .order_by(Alert.resolved_at)) if h and o and t]

        rows = await asyncio.to_thread(read)
        n = 0
        for home, rule, outcome, at in rows:
            self._outcomes_since = max(self._outcomes_since, at)
            cfg = self.homes.get(home)
            if cfg is None or outcome not in Outcome.__members__.values():
                continue
            state = engine.feedback(cfg, self.states[home], Rule(rule), Outcome(outcome))
            self._apply(home, state, [])
            n += 1
        return n

    # ------------------------------------------------------------------ InfluxDB export
    def _transitions(self) -> tuple[list[bytes], int]:
        with self.sessions() as s:
            return export.transition_lines(s, self._export_cursor)

    def _responses(self) -> list[bytes]:
        with self.sessions() as s:
            return export.response_lines(s, self.now())

    async def export_once(self) -> int:
        """One pass of the exporter: alert transitions since the last pass, response-time
        summaries when something changed (and every ``SUMMARY_EVERY_S``), and a
        ``home_mode`` point for each home whose mode changed since the last pass (every
        home at start-up and every ``export.HOME_MODE_EVERY_S``, so a dashboard's range always
        holds each home's mode). Returns how many points were written; raises if
        InfluxDB did not take them (the next pass writes them again)."""
        lines, last = await asyncio.to_thread(self._transitions)
        # Summaries change with transitions: refresh them then, and now and then so a
        # dashboard's "last 30 days" keeps moving.
        summary = time.monotonic() - self._summary_at >= SUMMARY_EVERY_S
        if lines or summary:
            lines += await asyncio.to_thread(self._responses)
        homes, now = self.homes, self.clock()
        seen = self._modes_seen
        if now - self._modes_at >= export.HOME_MODE_EVERY_S:
            seen = {}
        changed = await asyncio.to_thread(export.mode_changes, seen, homes)
        lines += export.home_mode_lines(changed, int(now * 1000))
        if lines:
            for i in range(0, len(lines), export.TRANSITIONS_PER_READ):
                await self.writer.write(lines[i:i + export.TRANSITIONS_PER_READ])
        else:
            await self.writer.ping()  # an outage is noticed without traffic too
        self._export_cursor = last
        if lines or summary:
            self._summary_at = time.monotonic()
        if seen is not self._modes_seen:
            self._modes_at = now
        self._modes_seen = homes
        return len(lines)

    async def exporter(self) -> None:
        """Alert transitions, response-time summaries and home modes → InfluxDB
        (dashboards; the lines: dolbom.alerts.export).

        Idempotent (explicit timestamps), so after a restart it simply starts over.
        """
        while not self.stopping.is_set():
            try:
                await self.export_once()
                await self._dependency_ok("influxdb")
            except Exception as e:  # dashboards wait; alarms never do
                log.warning("alert export to InfluxDB delayed: %s", e)
                await self._dependency_failed("influxdb")
            await self._sleep(self.settings.alerts.export_s)

    # ------------------------------------------------------------------ dependencies
    async def _dependency_failed(self, name: str) -> None:
        if name == "broker":
            self.deaf = True  # by either session: the devices cannot reach it either
        self.metrics.service_up.labels(name).set(0)
        if self.deps.failed(name, self.clock()):
            log.error("%s unreachable for %.0f s: technical alert raised", name,
                      self.deps.down_after_s)
            await self._service_alert(name, down=True)

    async def _dependency_ok(self, name: str) -> None:
        stream = self.stream_client
        if name == "broker" and self.deaf and stream is not None and stream.connected:
            self._heard_again()
        self.metrics.service_up.labels(name).set(1)
        if self.deps.ok(name):
            log.info("%s answers again: technical alert cleared", name)
            await self._service_alert(name, down=False)

    async def _service_alert(self, name: str, *, down: bool) -> None:
        """One ``service_unreachable`` alert per site (each site's operators are told)."""
        sites = sorted({cfg.site for cfg in self.homes.values()})
        at = self.now()

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
                self.deps.unreport(name)
            return
        self.outbox.wake.set()

    # ------------------------------------------------------------------ lifecycle
    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _wait(self, event: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    def _sync_metrics(self) -> None:
        m = self.metrics
        m.stream_messages.inc(self.stream_count - self._stream_synced)
        self._stream_synced = self.stream_count
        m.homes.set(len(self.homes))
        m.timer_heap.set(len(self._heap))

    def health(self) -> tuple[bool, dict[str, Any]]:
        down = self.deps.down()
        stream = self.stream_client is not None and self.stream_client.connected
        detail: dict[str, Any] = {"stream_session": stream, "homes": len(self.homes),
                                  "notices_sent": self.outbox.sent, "failing": sorted(down)}
        mode = self.settings.alerts.alarm_process
        if mode == "spawn":
            # its session and events: the alarm process's own /health
            own = self.alarm_proc is not None and self.alarm_proc.returncode is None
            alive = own or bool(self.alarm_adopted)
            detail["alarm_process"] = (self.alarm_proc.pid if own and self.alarm_proc
                                       else self.alarm_adopted)
        elif mode == "inline":
            alive = self.alarm.connected
            detail["alarm_session"] = alive
            detail["life_safety_events"] = self.alarms_journalled
        else:  # external: the deployment runs it and watches its /health
            alive = True
        return alive and stream and not down, detail

    async def run(self) -> None:
        o = self.settings.alerts
        # The alarm process first: it journals alarms while this one still loads the homes.
        alarms = (asyncio.create_task(self.alarm_supervisor(), name="alarm-process")
                  if o.alarm_process == "spawn" else None)
        try:
            await self._run(alarms)
        finally:
            if alarms is not None:
                self.stopping.set()
                await alarms

    async def _run(self, alarms: asyncio.Task[None] | None) -> None:
        await self.load()
        o = self.settings.alerts
        runner = await serve_metrics(o.metrics_host, o.metrics_port, self.metrics.registry,
                                     self.health, before_scrape=self._sync_metrics)
        async with self.writer:
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(measure_loop_lag(self.metrics.loop_lag, self.stopping),
                                   name="loop-lag")
                    if alarms is not None:
                        # a supervisor that fails takes the service down with it, loudly
                        tg.create_task(_watch(alarms), name="alarm-process")
                    elif o.alarm_process == "inline":
                        tg.create_task(self.alarm_session(), name="alarm-session")
                        tg.create_task(self.alarm.worker(self.stopping), name="alarm-worker")
                    tg.create_task(self.stream_session(), name="stream-session")
                    tg.create_task(self.timers(), name="timers")
                    tg.create_task(self.action_writer(), name="actions")
                    tg.create_task(self.escalations(), name="escalations")
                    # life-safety notices: the alarm process's outbox when there is one
                    tg.create_task(self.outbox.run(
                        self.stopping, o.outbox_poll_s,
                        (True, False) if o.alarm_process == "inline" else (False,)),
                        name="outbox")
                    tg.create_task(self.state_flusher(), name="state")
                    tg.create_task(self.registry_refresher(), name="registry")
                    tg.create_task(self.exporter(), name="exporter")
            finally:
                await self.flush_actions()
                await self.flush_states()
                await aclose_all(self.outbox.channels)
                if runner is not None:
                    await runner.cleanup()


async def _watch(task: asyncio.Task[None]) -> None:
    """Wait for ``task`` without cancelling it when the waiter is cancelled (it stops
    by itself when the service stops)."""
    await asyncio.shield(task)
