"""The simulator's shell: every simulated device on its own MQTT connection, one event loop.

Tasks (named, in one ``asyncio.TaskGroup``):

* ``sim:ticker`` advances the pure core (``engine.Simulation``) every
  ``tick_s`` and routes what it returns to the devices' queues;
* ``sim:device:<id>`` per device: an ``MqttSession`` with the device's own
  credentials and Will publishes its queue in order and reconnects with capped
  jittered backoff when the broker goes away;
* ``sim:control`` serves incidents on command (``control``);
* ``sim:stop`` waits for ``stop``, lets the devices drain and say goodbye.

Queues are bounded per device. While a link is down a full queue drops its
oldest telemetry first, then the oldest status, then the oldest activity
event, never a life-safety event (those also stay in the core's outbox until
acked). A clean stop (``stop`` set, or the task cancelled) publishes retained
``disconnected`` and sends DISCONNECT, so the broker discards the Will; a
``device_death`` drops the TCP connection without DISCONNECT, so the broker
publishes the Will ``lost`` (DESIGN.md §3).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zoneinfo
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

from dolbom.mqtt import (
    Backoff,
    Client,
    ConnectRefused,
    Endpoint,
    MqttError,
    MqttSession,
    Received,
    Will,
)
from dolbom.mqtt.errors import ConnectionLost
from dolbom.protocol import Ack, DecodeError, Kind, Topics, decode
from dolbom.sim import control
from dolbom.sim.engine import SimConfig, Simulation
from dolbom.sim.errors import IncidentError, SimError
from dolbom.sim.memory import load_memory, memory_path, save_memory
from dolbom.sim.model import MsgClass, Outgoing, SimClock
from dolbom.sim.plan import SimPlan
from dolbom.sim.settings import SimSettings
from dolbom.sim.stats import SimStats

log = logging.getLogger(__name__)

PUBLISH_TIMEOUT_S = 10.0
FAREWELL_TIMEOUT_S = 2.0
STOP_GRACE_S = 5.0  # after the drain, before device tasks are cancelled
MEMORY_SAVE_S = 60.0
# Drop order of a full queue; LIFE_SAFETY is never dropped.
_DROP_ORDER = (MsgClass.TELEMETRY, MsgClass.STATUS, MsgClass.EVENT)


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def local_tod_s(tz: str, now_ms: int) -> float:
    """Seconds since local midnight in ``tz`` at ``now_ms``."""
    t = datetime.fromtimestamp(now_ms / 1000, zoneinfo.ZoneInfo(tz))
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


@dataclass(slots=True)
class _Link:
    id: str
    password: str = field(repr=False)
    queue: deque[Outgoing] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    up: bool = False  # served since the last on_down (not a failed attempt)


class _Runner:
    def __init__(self, plan: SimPlan, settings: SimSettings, *, speed: float, stats: SimStats,
                 control_socket: Path | None, random_incident_rate: float,
                 stop: asyncio.Event, clock: Callable[[], int], start_tod_s: float | None,
                 memory_file: Path | None) -> None:
        self.plan, self.settings, self.stats, self.stop = plan, settings, stats, stop
        self.opts = settings.sim
        self.clock = clock
        self.control_socket = control_socket
        self.topics = Topics(settings.mqtt.topic_prefix)
        # One TLS context for every device link (None: plaintext on loopback).
        self._ssl = settings.mqtt.ssl_context()
        self.memory_file = memory_file
        now = clock()
        tod = start_tod_s if start_tod_s is not None else local_tod_s(self.opts.timezone, now)
        memory = load_memory(memory_file) if memory_file is not None else {}
        self.sim = Simulation(
            plan, SimClock(now, tod, speed), topics=self.topics,
            config=SimConfig(
                fw=self.opts.fw, retry_initial_s=self.opts.retry_initial_s,
                retry_cap_s=self.opts.retry_cap_s, random_incident_rate=random_incident_rate,
            ),
            memory=memory,
        )
        # Persist the new boot numbers before the first message goes out: a crash
        # must never let the next run reuse a (boot, seq) already sent.
        self._save_memory()
        self.links = {d.id: _Link(d.id, d.password) for _, d in plan.devices()}
        self._refused_logged = False
        stats.devices = len(self.links)

    # -- lifecycle -------------------------------------------------------------------
    async def run(self) -> None:
        if self.control_socket is not None:
            control.claim(self.control_socket)  # fail before any device connects
        try:
            async with asyncio.TaskGroup() as tg:
                devices = [tg.create_task(self._device(link), name=f"sim:device:{link.id}")
                           for link in self.links.values()]
                ticker = tg.create_task(self._ticker(), name="sim:ticker")
                ctl = None
                if self.control_socket is not None:
                    ctl = tg.create_task(control.serve(self.control_socket, self._command),
                                         name="sim:control")
                tg.create_task(self._stopper(devices, [t for t in (ticker, ctl) if t]),
                               name="sim:stop")
        except* SimError as group:
            # One clear error for the CLI rather than a group of one.
            raise group.exceptions[0] from None
        finally:
            self._save_memory()

    async def _stopper(self, devices: list[asyncio.Task[None]],
                       others: list[asyncio.Task[None]]) -> None:
        await self.stop.wait()
        for link in self.links.values():
            link.wake.set()
        _, late = await asyncio.wait(devices, timeout=self.opts.drain_s + STOP_GRACE_S)
        for t in [*late, *others]:
            t.cancel()  # a device task cancelled still says goodbye (see _device)

    def _save_memory(self) -> None:
        if self.memory_file is not None:
            save_memory(self.memory_file, self.sim.memory())

    # -- the core ------------------------------------------------------------------
    async def _ticker(self) -> None:
        last_save = self.clock()
        while not self.stop.is_set():
            now = self.clock()
            self._route(self.sim.advance(now))
            changed = self._lifecycle()
            if changed or now - last_save >= MEMORY_SAVE_S * 1000:
                self._save_memory()
                last_save = now
            self._update_stats(now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.opts.tick_s)

    def _lifecycle(self) -> bool:
        changed = self.sim.take_lifecycle()
        for dev in changed:
            self.links[dev].wake.set()  # its task aborts the link or reconnects
        return bool(changed)

    def _route(self, outs: list[Outgoing]) -> None:
        bound = self.opts.queue_size
        for o in outs:
            link = self.links[o.device]
            q = link.queue
            if o.cls is MsgClass.LIFE_SAFETY:
                # Jumps the backlog (but not the birth or an earlier press): an
                # alarm must not wait behind hours of queued telemetry. Order
                # within a boot does not matter to the receiver's dedup window.
                i = 0
                while i < len(q) and q[i].cls in (MsgClass.LIFE_SAFETY, MsgClass.STATUS):
                    i += 1
                q.insert(i, o)
            else:
                q.append(o)
            if len(q) > bound:
                self._drop_one(q)
            link.wake.set()

    def _drop_one(self, q: deque[Outgoing]) -> None:
        for cls in _DROP_ORDER:
            for i, o in enumerate(q):
                if o.cls is cls:
                    del q[i]
                    self.stats.dropped += 1
                    return
        # Only life-safety events left: keep them all, the bound yields.

    def _update_stats(self, now: int) -> None:
        s = self.stats
        s.dead = sum(1 for d in self.sim.devices.values() if not d.alive)
        s.life_safety_pending, s.max_tries = self.sim.pending()
        s.life_safety_resent = self.sim.resent
        s.incidents = tuple(self.sim.active_incidents())
        s.sim_time = SimClock.describe(self.sim.sim_time(now))

    async def _command(self, cmd: dict[str, Any]) -> dict[str, Any]:
        if cmd.get("stats"):
            self._update_stats(self.clock())
            return {"ok": True, "stats": self.stats.snapshot().as_dict()}
        incident, home, device = cmd.get("incident"), cmd.get("home"), cmd.get("device")
        if not isinstance(incident, str) or not isinstance(home, str):
            return {"ok": False, "error": "a command needs \"incident\" and \"home\" strings"}
        if device is not None and not isinstance(device, str):
            return {"ok": False, "error": "\"device\" must be a string"}
        homes = list(self.sim.homes) if home == "*" else [home]
        if home == "*" and device is not None:
            return {"ok": False, "error": "\"device\" needs one home, not \"*\""}
        errors = []
        for h in homes:
            try:
                self._route(self.sim.inject(h, incident, self.clock(), device=device))
            except IncidentError as e:
                errors.append(str(e))
        if len(errors) == len(homes):
            return {"ok": False, "error": errors[0]}
        if self._lifecycle():
            self._save_memory()
        self._update_stats(self.clock())
        log.info("incident %s in home %s", incident, home)  # opaque ids only
        return {"ok": True, "skipped": errors} if errors else {"ok": True}

    # -- one device ----------------------------------------------------------------
    async def _device(self, link: _Link) -> None:
        mqtt = self.settings.mqtt
        will_topic, will_payload = self.sim.will(link.id)
        session = MqttSession(
            Endpoint(mqtt.host, mqtt.port, link.id, link.password, mqtt.keepalive,
                     self._ssl, mqtt.tls.server_hostname),
            link.id, [(self.topics.ack(self.plan.site, link.id), 1)],
            on_message_from=partial(self._on_message, link),
            will=Will(will_topic, will_payload, qos=1, retain=True),
            before_connect=partial(self._until_alive, link), disconnect_on_stop=False,
            backoff=Backoff(initial=0.5, cap=self.opts.connect_backoff_cap_s), quiet=True)

        async def up() -> None:
            assert session.client is not None
            link.up = True
            await self._serve(link, session.client)

        async def down() -> None:
            if not link.up and session.error is not None:
                self._connect_failed(link, session.error)
            link.up = False

        session.on_up, session.on_down = up, down
        try:
            await session.run(self.stop)
        except asyncio.CancelledError:
            client = session.client
            if client is not None and client.connected:
                # Cancelled (e.g. the demo stops us): still leave cleanly, so the
                # broker discards the Will.
                with contextlib.suppress(MqttError):
                    client.publish_nowait(*self._farewell(link))
                await client.disconnect()
            raise

    async def _until_alive(self, link: _Link) -> None:
        """A dead device stays off the air until the core brings it back (or stop)."""
        while not self.stop.is_set() and not self.sim.alive(link.id):
            await self._wait(link)

    def _on_message(self, link: _Link, msg: Received, client: Client) -> None:
        client.ack(msg)  # PUBACK what the broker sent; only acks are subscribed
        self._on_ack(link, msg)

    async def _serve(self, link: _Link, client: Client) -> None:
        """The link is up: birth and outbox first, then the queue, until it ends."""
        self._route_first(link, self.sim.link_up(link.id, self.clock()))
        self.stats.connected += 1
        try:
            await self._pump(link, client)
        except MqttError as e:
            # The session drops what is left of the link (a PUBACK timeout leaves it
            # open: the next connection must not be a session takeover) and backs off.
            self.stats.reconnects += 1
            log.debug("device %s: link lost (%s)", link.id, e)
            raise
        finally:
            self.stats.connected -= 1
            self.sim.link_down(link.id)

    def _farewell(self, link: _Link) -> tuple[str, bytes, int, bool]:
        msg = self.sim.farewell(link.id)
        return msg.topic, msg.payload, msg.qos, msg.retain

    def _connect_failed(self, link: _Link, e: MqttError) -> None:
        self.stats.connect_failures += 1
        if isinstance(e, ConnectRefused) and not e.retryable and not self._refused_logged:
            # Wrong credentials or ACL: worth one line for the whole fleet, then
            # keep trying quietly (the registry may sync the broker later).
            self._refused_logged = True
            log.warning("device %s: %s (is the broker synced with the registry? "
                        "`dolbom registry sync-broker`); further refusals are counted",
                        link.id, e)
        else:
            log.debug("device %s: %s", link.id, e)

    def _route_first(self, link: _Link, outs: list[Outgoing]) -> None:
        """Birth and outbox go before the backlog; queued life-safety copies are redundant."""
        q = link.queue
        kept = [o for o in q if o.cls is not MsgClass.LIFE_SAFETY]
        q.clear()
        q.extend(outs)
        q.extend(kept)
        link.wake.set()

    async def _pump(self, link: _Link, client: Client) -> None:
        closed = asyncio.ensure_future(client.wait_closed())

        def on_closed(f: asyncio.Future[None]) -> None:
            if not f.cancelled():
                f.exception()  # retrieved: the pump re-raises it below
            link.wake.set()

        closed.add_done_callback(on_closed)
        try:
            while True:
                if self.stop.is_set():
                    await self._leave(link, client)
                    return
                if not self.sim.alive(link.id):
                    # device_death: no DISCONNECT, so the broker publishes the Will.
                    client.abort()
                    link.queue.clear()
                    return
                if closed.done():
                    closed.result()
                    raise ConnectionLost("closed")
                if link.queue:
                    await self._publish_next(link, client)
                    continue
                link.wake.clear()
                await link.wake.wait()
        finally:
            closed.cancel()

    async def _publish_next(self, link: _Link, client: Client,
                            timeout: float = PUBLISH_TIMEOUT_S) -> None:
        """Publish the head of the queue; on failure it goes back to the head."""
        out = link.queue.popleft()
        try:
            await self._publish(client, out, timeout)
        except BaseException:
            link.queue.appendleft(out)
            raise

    async def _publish(self, client: Client, out: Outgoing,
                       timeout: float = PUBLISH_TIMEOUT_S) -> None:
        msg = out.at(self.clock())  # backlog older than 5 s goes as ``hist``
        await client.publish(msg.topic, msg.payload, msg.qos, msg.retain, timeout=timeout)
        self.stats.sent[msg.name] += 1

    async def _leave(self, link: _Link, client: Client) -> None:
        """Flush what we can within ``drain_s``, say ``disconnected``, DISCONNECT."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.opts.drain_s
        with contextlib.suppress(MqttError):
            while link.queue and (left := deadline - loop.time()) > 0:
                await self._publish_next(link, client, timeout=left)
            await self._publish(client, self.sim.farewell(link.id), FAREWELL_TIMEOUT_S)
        await client.disconnect()

    def _on_ack(self, link: _Link, msg: Received) -> None:
        topic = self.topics.parse(msg.topic)
        if topic is None or topic.kind is not Kind.ACK or topic.device != link.id:
            return
        try:
            ack = decode(topic, msg.payload)
        except DecodeError as e:
            log.debug("device %s: bad ack (%s)", link.id, e.reason)
            return
        if isinstance(ack, Ack) and self.sim.ack(link.id, ack.boot, ack.seq):
            self.stats.life_safety_acked += 1
            self.stats.life_safety_pending, self.stats.max_tries = self.sim.pending()

    async def _wait(self, link: _Link) -> None:
        link.wake.clear()
        if self.stop.is_set() or self.sim.alive(link.id):
            return
        await link.wake.wait()



async def run_simulator(
    plan: SimPlan,
    settings: SimSettings,
    *,
    speed: float,
    stats: SimStats,
    control_socket: Path | None,
    random_incident_rate: float,
    stop: asyncio.Event,
    clock: Callable[[], int] = wall_ms,
    start_tod_s: float | None = None,
    memory_file: Path | None = None,
) -> None:
    """Run every device of ``plan`` against the broker in ``settings.mqtt`` until ``stop``.

    ``stats`` is updated live. ``control_socket``: where to accept incident
    commands (None: no control channel). ``random_incident_rate``: expected
    incidents per home per real hour. ``start_tod_s``: simulated time of day
    at start (default: now, in ``settings.sim.timezone``). ``memory_file``:
    where device boot counters persist (default: in the state directory).
    Cancelling the task stops it cleanly too.
    """
    if memory_file is None:
        memory_file = memory_path(settings.state_dir(), plan.site)
    runner = _Runner(plan, settings, speed=speed, stats=stats, control_socket=control_socket,
                     random_incident_rate=random_incident_rate, stop=stop, clock=clock,
                     start_tod_s=start_tod_s, memory_file=memory_file)
    await runner.run()
