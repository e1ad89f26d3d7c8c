"""``AlarmPath``: life-safety events in over a persistent QoS 1 session, journalled, then
acknowledged to the device, then PUBACKed (DESIGN.md §3): in this order, always."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from functools import partial

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts.alarm.decode import alarm_of
from dolbom.alerts.alarm.journal import (
    Route,
    journal_alarm,
    journal_alarm_promptly,
    journal_sessions,
)
from dolbom.alerts.gate import WriteGate
from dolbom.alerts.metrics import AlertsMetrics
from dolbom.alerts.model import EscalationTable
from dolbom.alerts.pause import pause
from dolbom.alerts.settings import AlertsSettings
from dolbom.mqtt import Backoff, Client, MqttError, MqttSession, Received
from dolbom.protocol import LIFE_SAFETY, Kind, Topics, encode_ack

log = logging.getLogger("dolbom.alerts.alarms")


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
                    await pause(stopping, delay)

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
