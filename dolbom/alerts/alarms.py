"""The life-safety path (DESIGN.md §3, §5): journal, then ack the device, then PUBACK.

    AlarmPath     a persistent QoS 1 MQTT session subscribed to life-safety events
                  only; each event → alert + journal row + outbox rows, committed in
                  one transaction → `ack` to the device → PUBACK to the broker. An
                  event from a device with no home is raised for its site, one whose
                  payload fails validation from its topic alone (docs/alerts.md)
    AlarmProcess  the path in a process of its own, with the outbox worker for
                  life-safety notices and the re-notices and escalations of
                  life-safety alerts: the whole life-safety path, needing nothing
                  of the rules process

Why a process of its own: the rules process decodes and evaluates every message of
the fleet (30,000 a second nationally), saves rule state and delivers welfare notices.
Sharing its event loop and its GIL, an alarm waits behind whatever that process is
doing. Here nothing runs but alarms and their notices: the operating system wakes
this process as soon as an alarm arrives, whatever the load on the rules.

And why it does not depend on the rules process: that process evaluates the rules of
the whole fleet, and a crash or a stall there (a bug in a rule, SIGSTOP, swapping) must
not stop an alarm, its ack, its notices or its escalation. So it runs either as its own
command, ``dolbom alerts alarms``, supervised by the deployment (systemd,
``Restart=always``; ``alarm_process=external``), or, for the quick start, spawned by
``dolbom alerts run`` (``alarm_process=spawn``: ``python -m dolbom.alerts.alarms
--settings-stdin``, settings pickled on stdin, never in arguments or the environment).
A spawned one gets a session of its own and no parent-death signal: a rules process
killed with SIGKILL or stopped with SIGSTOP leaves it running, and a group signal
(Ctrl-Z, Ctrl-C in the terminal) does not reach it. The rules process restarts it if it
exits, stops it when it stops, and on its own restart finds it running and watches it
instead of starting a second: every alarm process holds ``alarm_lock_path`` locked
(``flock``, released by the kernel however the holder dies), and one that finds the
lock held exits at once (``ALREADY_RUNNING``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import fcntl
import hashlib
import logging
import os
import pickle
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, event, make_url, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.gate import WriteGate
from dolbom.alerts.metrics import AlertsMetrics, measure_loop_lag
from dolbom.alerts.model import EscalationTable, Priority, Rule
from dolbom.alerts.notify.base import Channel
from dolbom.alerts.notify.factory import aclose_all
from dolbom.alerts.outbox import escalate_due, outbox_for
from dolbom.alerts.rules import life_safety
from dolbom.alerts.rules.base import LIFE_SAFETY_RULES
from dolbom.alerts.rules.observations import LifeSafetyObs
from dolbom.alerts.settings import AlertsSettings
from dolbom.metrics_http import serve_metrics
from dolbom.mqtt import Backoff, Client, MqttError, MqttSession, Received
from dolbom.protocol import (
    LIFE_SAFETY,
    DecodeError,
    Event,
    Kind,
    Reason,
    Topic,
    Topics,
    decode,
    encode_ack,
)
from dolbom.registry import service as registry
from dolbom.registry.db import SQLITE_BUSY_TIMEOUT_MS, make_engine, session_factory
from dolbom.registry.models import Device, Site

log = logging.getLogger("dolbom.alerts.alarms")
Route = tuple[str, str]  # (site, home) of a device
ROUTES_CHECK_S = 30.0  # the device → home map is re-read when the registry moved
ROUTES_RELOAD_S = 600.0  # and in any case this often (a device moved to another home)
RAW_KEEP_BYTES = 4096  # of a payload that failed validation, kept with its alert
# The journal key of an event whose payload failed validation is (dev, -1, hash): a real
# boot is never negative (DESIGN.md §3 envelope), so it never meets a device's own key.
UNDECODABLE_BOOT = -1


def undecodable_key(device: str, payload: bytes) -> tuple[str, int, int]:
    """The dedup key of a payload with no (boot, seq) of its own: the same bytes from the
    same device again (a redelivery) are the same event. 63 bits of the SHA-256, so the
    key fits the journal's signed 64-bit ``seq``."""
    digest = hashlib.sha256(payload).digest()
    return device, UNDECODABLE_BOOT, int.from_bytes(digest[:8], "big") >> 1


# --- alarms that cannot be routed to a home or decoded (docs/alerts.md) ---------------------


@dataclass(frozen=True, slots=True)
class Alarm:
    """One life-safety event as the path journals it, valid payload or not.

    ``ack`` is the (boot, seq) to acknowledge to the device, None when the payload gave
    none (then nothing but the PUBACK follows the journal). ``reason`` is why the payload
    failed validation, None when it did not."""

    site: str  # from the topic
    device: str
    rule: Rule
    event_key: tuple[str, int, int]
    at_ms: int
    event_ts_ms: int | None
    hist: bool
    detail: dict[str, Any]
    ack: tuple[int, int] | None
    reason: Reason | None = None


def raw_detail(payload: bytes) -> dict[str, Any]:
    """The first ``RAW_KEEP_BYTES`` of a payload that failed validation, for the alert's
    detail: as text when it is UTF-8 without NULs (a multi-byte character cut at the
    bound is dropped), else as base64; with its full size and SHA-256."""
    head = payload[:RAW_KEEP_BYTES]
    d: dict[str, Any] = {"payload_bytes": len(payload),
                         "payload_sha256": hashlib.sha256(payload).hexdigest(),
                         "payload_truncated": len(payload) > RAW_KEEP_BYTES}
    text: str | None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as e:
        cut = d["payload_truncated"] and e.start >= len(head) - 3 and e.end == len(head)
        text = head[:e.start].decode("utf-8") if cut else None
    if text is not None and "\x00" not in text:
        d["payload"] = text
    else:
        d["payload_b64"] = base64.b64encode(head).decode("ascii")
    return d


def alarm_of(topic: Topic, payload: bytes, at_ms: int) -> Alarm:
    """The alarm of a message on a life-safety topic (``topic.name`` in LIFE_SAFETY).

    A payload that fails validation still means someone may need help: the device and
    the type are in the topic, so it is an alarm all the same, keyed by
    ``undecodable_key`` and carrying the raw payload (bounded)."""
    rule = LIFE_SAFETY_RULES[topic.name]
    try:
        m = decode(topic, payload)
    except DecodeError as e:
        return Alarm(topic.site, topic.device, rule, undecodable_key(topic.device, payload),
                     at_ms, None, False,
                     {"device": topic.device, "hist": False, "undecodable": True,
                      "reason": e.reason.value, **raw_detail(payload)}, None, e.reason)
    assert isinstance(m, Event)  # an event topic decodes to an Event or raises
    r = life_safety.on_event(LifeSafetyObs(topic.device, topic.name, m.env.boot, m.env.seq,
                                           m.env.ts, at_ms, m.env.hist))
    assert r.event_key is not None
    return Alarm(topic.site, topic.device, rule, r.event_key, at_ms, r.event_ts_ms,
                 m.env.hist, dict(r.detail), (m.env.boot, m.env.seq))


def journal_alarm(sessions: sessionmaker[Session], alarm: Alarm, route: Route | None,
                  table: EscalationTable) -> lc.RaiseResult | None:
    """Alert, journal row and outbox rows of one alarm, in one transaction.

    ``route`` None: the device has no home (a corridor detector, a device installed
    before its home is set up). The alarm is raised for the device's site in the
    registry, or the topic's site when the registry does not know the device, with no
    home, one open alert per device (``subject``), told to the site's supervisors,
    responders and operators (``recipients.recipients``). None when neither the device
    nor the topic's site is in the registry: there is nobody to tell.
    """
    with sessions.begin() as s:
        detail = dict(alarm.detail)
        home: str | None
        if route is not None:
            site, home = route
        else:
            registered = s.scalar(select(Device.site_id).where(Device.id == alarm.device))
            site_known = registered or s.scalar(select(Site.id).where(Site.id == alarm.site))
            if site_known is None:
                return None
            site, home = site_known, None
            detail["no_home"] = True
        return lc.raise_alert(
            s, site=site, home=home, rule=alarm.rule, priority=Priority.HIGH,
            at=datetime.fromtimestamp(alarm.at_ms / 1000, UTC), table=table,
            device=alarm.device, detail=detail, event_key=alarm.event_key,
            event_ts=(None if alarm.event_ts_ms is None
                      else datetime.fromtimestamp(alarm.event_ts_ms / 1000, UTC)),
            hist=alarm.hist, subject=alarm.device if home is None else None)


# SQLite has one writer at a time, and the busy handler with which a writer waits for
# another process's transaction sleeps 1, 2, 5, ... then 25 to 100 ms between tries.
# Ingest (last-seen times) and the rules process (rule state) write in many short
# transactions back to back; a journal write trying every 25-100 ms kept missing the
# gaps between them: 142 ms p99 from a press to the webhook at 10,000 msg/s, nearly all
# of it waiting here (docs/benchmarks.md). So the journal takes the write lock itself
# (BEGIN IMMEDIATE, no busy handler) and tries again every millisecond.
JOURNAL_RETRY_S = 0.001
JOURNAL_BUSY_S = SQLITE_BUSY_TIMEOUT_MS / 1000  # then it is an error (the worker retries)
SQLITE_BUSY, SQLITE_LOCKED = 5, 6


def journal_sessions(url: str | URL) -> sessionmaker[Session] | None:
    """On SQLite, sessions whose transactions take the write lock at BEGIN and fail at
    once while another holds it (``journal_alarm_promptly`` tries again); None for a
    server database, whose writers queue for row locks on the server (and for an
    in-memory SQLite, which another engine would not share)."""
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or u.database in (None, "", ":memory:"):
        return None
    engine = make_engine(u.render_as_string(hide_password=False))

    @event.listens_for(engine, "connect")
    def _own_begin(dbapi_conn: Any, _record: Any) -> None:
        # after make_engine's pragmas (listeners run in order): no busy handler, and
        # no implicit BEGIN from the driver: the "begin" listener below emits it
        dbapi_conn.execute("PRAGMA busy_timeout=0")
        dbapi_conn.isolation_level = None

    @event.listens_for(engine, "begin")
    def _immediate(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return sessionmaker(bind=engine, expire_on_commit=False)


def _busy(e: OperationalError) -> bool:
    code = getattr(e.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    return "database is locked" in str(e.orig)


def journal_alarm_promptly(sessions: sessionmaker[Session], alarm: Alarm,
                           route: Route | None, table: EscalationTable, *,
                           busy_s: float = JOURNAL_BUSY_S) -> lc.RaiseResult | None:
    """``journal_alarm`` with sessions of ``journal_sessions``: while another process holds
    SQLite's write lock, the whole transaction is tried again every millisecond (nothing
    of it was written), for at most ``busy_s``."""
    deadline = time.monotonic() + busy_s
    while True:
        try:
            return journal_alarm(sessions, alarm, route, table)
        except OperationalError as e:
            if not _busy(e) or time.monotonic() >= deadline:
                raise
        time.sleep(JOURNAL_RETRY_S)


class AlarmPath:
    """Life-safety events in, journalled, acknowledged; the caller runs ``worker``
    and ``session``. ``route`` maps a device to its (site, home) from memory;
    ``lookup`` is asked when it does not know the device (a device added since)."""

    def __init__(self, settings: AlertsSettings, sessions: sessionmaker[Session], *,
                 clock: Callable[[], float], table: EscalationTable, gate: WriteGate,
                 metrics: AlertsMetrics, wake: Callable[[], None],
                 route: Callable[[str], Route | None],
                 lookup: Callable[[str], Awaitable[Route | None]]) -> None:
        self.settings, self.sessions, self.clock, self.table = settings, sessions, clock, table
        bind = sessions.kw.get("bind")  # the journal's own engine, on the same database
        self._journal = journal_sessions(bind.url) if isinstance(bind, Engine) else None
        self.gate, self.metrics, self.wake = gate, metrics, wake
        self.route, self.lookup = route, lookup
        self.topics = Topics(settings.mqtt.topic_prefix)
        self.client: Client | None = None
        self.journalled = 0
        # (monotonic receive time, message): the queue wait is a stage of the path
        self._queue: asyncio.Queue[tuple[float, Received]] = asyncio.Queue()

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    def on_message(self, msg: Received) -> None:
        self._queue.put_nowait((time.monotonic(), msg))

    async def session(self, stopping: asyncio.Event, *,
                      on_up: Callable[[], Awaitable[None]] | None = None,
                      on_down: Callable[[], Awaitable[None]] | None = None) -> None:
        p = self.topics.prefix
        up = self.metrics.mqtt_up.labels("alarm")

        async def connected() -> None:
            self.client = session.client
            up.set(1)
            if on_up is not None:
                await on_up()

        async def lost() -> None:
            up.set(0)
            if on_down is not None:
                await on_down()

        session = MqttSession(
            self.settings.mqtt.endpoint(), self.settings.alerts.alarm_client_id,
            [(f"{p}/+/+/event/{t}", 1) for t in sorted(LIFE_SAFETY)], persistent=True,
            on_message=self.on_message, on_up=connected, on_down=lost)
        await session.run(stopping)

    async def worker(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            get = asyncio.ensure_future(self._queue.get())
            stop = asyncio.ensure_future(stopping.wait())
            await asyncio.wait([get, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if not get.done():
                get.cancel()
                return
            received, msg = get.result()
            self.metrics.alarm_stage.labels("queued").observe(time.monotonic() - received)
            backoff = Backoff(0.05, 2.0)
            while not stopping.is_set():
                try:
                    await self.handle(msg)
                    break
                except Exception:
                    # Not durable yet (e.g. the database is busy or away): keep the
                    # message, un-acked, and try again; never drop an alarm.
                    self.metrics.alarm_retries.inc()
                    delay = backoff.next_delay()
                    log.exception("life-safety event not journalled yet; retrying in %.2f s",
                                  delay)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stopping.wait(), delay)

    async def handle(self, msg: Received) -> None:
        """Journal, then ack the device, then PUBACK: in this order, always.

        A life-safety event is acknowledged only once it is journalled and raised to
        people: with no home it is raised for its site; with a payload that fails
        validation it is raised from the topic alone (and gets no ``ack``, which needs
        the payload's boot and seq). Only a message that cannot be tied to a device and
        a site in the registry is dropped, counted and logged (never its payload)."""
        client = self.client
        topic = self.topics.parse(msg.topic)
        if topic is None or topic.kind is not Kind.EVENT or topic.name not in LIFE_SAFETY:
            self._drop(msg, "bad_topic")
            return
        started = time.monotonic()
        alarm = alarm_of(topic, msg.payload, int(self.clock() * 1000))
        if alarm.reason is not None:
            self.metrics.alarm_undecodable.labels(alarm.reason.value).inc()
            log.error("life-safety event %s from device %s failed validation (%s, %d bytes): "
                      "raised from its topic", topic.name, topic.device, alarm.reason.value,
                      len(msg.payload))
        route = self.route(topic.device) or await self.lookup(topic.device)
        # Durable first (DESIGN.md §3): if this raises, nothing is acked and the broker
        # delivers the event again. Ahead of every other write waiting.
        write = (partial(journal_alarm, self.sessions, alarm, route, self.table)
                 if self._journal is None else
                 partial(journal_alarm_promptly, self._journal, alarm, route, self.table))
        done = await self.gate.run(write, urgent=True)
        if done is None:
            self._drop(msg, "unknown_site")
            return
        if route is None:
            self.metrics.alarm_unrouted.inc()
            if not done.duplicate:
                log.error("life-safety event %s from device %s, which has no home: raised "
                          "for site %s", topic.name, topic.device, topic.site)
        if done.created and done.notices == 0:
            log.error("life-safety alert %d has nobody with a contact to tell", done.alert_id)
        self.journalled += 1
        self.metrics.alarms.inc()
        self.wake()
        journalled = time.monotonic()
        self.metrics.alarm_stage.labels("journal").observe(journalled - started)
        if client is not None and client.connected:
            if alarm.ack is not None:
                with contextlib.suppress(MqttError):
                    await client.publish(self.topics.ack(topic.site, topic.device),
                                         encode_ack(*alarm.ack), qos=1)
            client.ack(msg)
        self.metrics.alarm_stage.labels("ack").observe(time.monotonic() - journalled)

    def _drop(self, msg: Received, reason: str) -> None:
        """Nothing to tie the message to: count it, log it (not its payload), PUBACK it."""
        self.metrics.alarm_dropped.labels(reason).inc()
        log.error("message on a life-safety topic dropped (%s): topic %r, %d bytes", reason,
                  msg.topic[:200], len(msg.payload))
        client = self.client
        if client is not None and client.connected:
            client.ack(msg)


def _routes(s: Session, device: str | None = None) -> dict[str, Route]:
    stmt = (select(Device.id, Device.site_id, Device.home_id)
            .where(Device.revoked_at.is_(None), Device.home_id.is_not(None)))
    if device is not None:
        stmt = stmt.where(Device.id == device)
    return {dev: (sys.intern(site), sys.intern(home)) for dev, site, home in s.execute(stmt)
            if home is not None}


class AlarmProcess:
    """The alarm path, the life-safety outbox and the escalation of life-safety alerts,
    on their own event loop and process."""

    def __init__(self, settings: AlertsSettings, *, clock: Callable[[], float] = time.time,
                 channels: dict[str, Channel] | None = None,
                 table: EscalationTable | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.table = table or settings.alerts.escalation_table()
        self.sessions = session_factory(settings.database_url)
        self.metrics = AlertsMetrics()
        self.gate = WriteGate()
        self.stopping = asyncio.Event()
        self.outbox = outbox_for(settings, self.sessions, channels, clock=clock,
                                 table=self.table, metrics=self.metrics, gate=self.gate)
        self.routes: dict[str, Route] = {}
        self.escalated = 0
        self._version: tuple[Any, ...] | None = None
        self._loaded_at = 0.0
        self.path = AlarmPath(settings, self.sessions, clock=clock, table=self.table,
                              gate=self.gate, metrics=self.metrics, wake=self.outbox.wake.set,
                              route=self.routes.get, lookup=self._lookup)

    async def load_routes(self, *, force: bool = False) -> None:
        known = None if force else self._version

        def read() -> tuple[tuple[Any, ...], dict[str, Route] | None]:
            with self.sessions() as s:
                version = registry.device_index_version(s)
                return version, (None if version == known else _routes(s))

        version, routes = await asyncio.to_thread(read)
        if routes is not None:
            self.routes.clear()
            self.routes.update(routes)  # the same dict: AlarmPath holds its .get
            self._loaded_at = time.monotonic()
        self._version = version

    async def _lookup(self, device: str) -> Route | None:
        """A device the map does not know: ask the registry about that device alone."""
        def read() -> dict[str, Route]:
            with self.sessions() as s:
                return _routes(s, device)

        found = await asyncio.to_thread(read)
        self.routes.update(found)
        return found.get(device)

    async def route_refresher(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), ROUTES_CHECK_S)
            try:
                await self.load_routes(
                    force=time.monotonic() - self._loaded_at >= ROUTES_RELOAD_S)
            except Exception:
                log.exception("could not re-read the device map; keeping the one we have")

    async def run_escalations(self) -> int:
        """Re-notify and escalate the unacknowledged life-safety alerts that are due (the
        rules process does the others: ``outbox.of_class``)."""
        def step() -> int:
            now = datetime.fromtimestamp(self.clock(), UTC)
            with self.sessions.begin() as s:
                return escalate_due(s, now, self.table, high=True)

        n = await self.gate.run(step, urgent=True)
        if n:
            self.escalated += n
            self.outbox.wake.set()
        return n

    async def escalations(self) -> None:
        while not self.stopping.is_set():
            try:
                await self.run_escalations()
            except Exception:
                log.exception("escalation pass failed; retrying")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.settings.alerts.tick_s)

    def health(self) -> tuple[bool, dict[str, Any]]:
        return self.path.connected, {
            "alarm_session": self.path.connected,
            "devices": len(self.routes),
            "life_safety_events": self.path.journalled,
            "notices_sent": self.outbox.sent,
            "escalation_steps": self.escalated,
        }

    async def run(self) -> None:
        await self.load_routes(force=True)
        o = self.settings.alerts
        runner = await serve_metrics(o.metrics_host, o.alarm_metrics_port,
                                     self.metrics.registry, self.health)
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.path.session(self.stopping), name="alarm-session")
                tg.create_task(self.path.worker(self.stopping), name="alarm-worker")
                tg.create_task(self.outbox.run(self.stopping, o.outbox_poll_s,
                                               classes=(True,)), name="alarm-outbox")
                tg.create_task(self.escalations(), name="alarm-escalations")
                tg.create_task(self.route_refresher(), name="routes")
                tg.create_task(measure_loop_lag(self.metrics.loop_lag, self.stopping),
                               name="loop-lag")
        finally:
            await aclose_all(self.outbox.channels)
            if runner is not None:
                await runner.cleanup()


# --- the process --------------------------------------------------------------------------

ALREADY_RUNNING = 75  # exit status (EX_TEMPFAIL) of an alarm process that found the lock held
LOCK_WAIT_S = 2.0  # a starting alarm process waits this long for the lock to come free


def alarm_lock_path(settings: AlertsSettings) -> Path:
    """The lock file of the alarm process of these settings: ``alarm_lock_file``, or one
    in the temporary directory named for the database, the broker and the alarm session's
    client id (a hash: the database URL may hold a password)."""
    if settings.alerts.alarm_lock_file is not None:
        return settings.alerts.alarm_lock_file
    m = settings.mqtt
    key = f"{settings.database_url}|{m.host}:{m.port}|{settings.alerts.alarm_client_id}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"dolbom-alarms-{digest}.lock"


def take_lock(path: Path, wait_s: float = LOCK_WAIT_S) -> int | None:
    """Lock ``path`` for this process's lifetime and write its PID in it; the open file
    descriptor, or None when another process holds it. The kernel releases it however
    this process ends, so no stale lock survives a SIGKILL."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.1)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def lock_holder(path: Path) -> int | None:
    """The PID of the alarm process holding ``path`` (0 when it has not written it yet),
    or None when nobody holds it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            return int(text) if text.isdigit() else 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


async def spawn(settings: AlertsSettings) -> asyncio.subprocess.Process:
    """Start the alarm process for this service; settings go over a pipe.

    A session of its own (``start_new_session``) and no parent-death signal: it must
    outlive a rules process that is killed or stopped (see the module's docstring)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dolbom.alerts.alarms", "--settings-stdin",
        stdin=asyncio.subprocess.PIPE, start_new_session=True)
    assert proc.stdin is not None
    proc.stdin.write(pickle.dumps(settings))
    await proc.stdin.drain()
    proc.stdin.close()
    return proc


def serve(settings: AlertsSettings) -> int:
    """Run the alarm process until SIGTERM or SIGINT; the exit status.

    ``ALREADY_RUNNING`` when another alarm process holds the lock: two would take each
    other's broker session (one client id) over and over."""
    lock = alarm_lock_path(settings)
    try:
        fd = take_lock(lock)
    except OSError as e:
        print(f"dolbom alerts alarms: cannot open the lock file {lock}: {e.strerror}",
              file=sys.stderr)
        return 1
    if fd is None:
        print(f"dolbom alerts alarms: an alarm process is already running "
              f"(pid {lock_holder(lock) or '?'}, lock {lock})", file=sys.stderr)
        return ALREADY_RUNNING

    async def run() -> None:
        proc = AlarmProcess(settings)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, proc.stopping.set)
        await proc.run()

    try:
        asyncio.run(run())
    finally:
        os.close(fd)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dolbom.alerts.alarms",
                                     description="the alarm process, as `dolbom alerts run` "
                                     "spawns it (run on its own: `dolbom alerts alarms`)")
    parser.add_argument("--settings-stdin", action="store_true", required=True,
                        help="read the service's settings (pickled) from stdin")
    parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - our parent, over a pipe
    if not isinstance(settings, AlertsSettings):
        print("dolbom alerts: the alarm process expects the service's settings on stdin",
              file=sys.stderr)
        return 2
    return serve(settings)


if __name__ == "__main__":
    sys.exit(main())
