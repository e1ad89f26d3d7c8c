"""One MQTT session kept alive: connect (TLS-ready), subscribe, reconnect with the one
jittered backoff policy, until the owner stops it.

Every service, the simulator and the gateway hold their broker connections through
``MqttSession``: the reconnect loop, its backoff and its log lines are written once here.
The owner learns of the connection through ``on_up`` / ``on_down`` (health and
metrics) and reads ``session.client`` to publish and ack. Manual ack is the client's
(``Client.ack``); a persistent session (``persistent=True``, clean session off) keeps
QoS 1 messages at the broker while the owner is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial

from dolbom.mqtt.backoff import Backoff, reconnect_backoff
from dolbom.mqtt.client import Client
from dolbom.mqtt.errors import MqttError
from dolbom.mqtt.packets import Received, Will

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and as whom to connect: a broker address, credentials, keepalive and TLS
    (``ssl`` None: plaintext, which settings allow on loopback only)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None
    keepalive: int = 30
    ssl: ssl.SSLContext | None = None
    server_hostname: str | None = None


async def _nothing() -> None:
    return None


class MqttSession:
    """Keep one client connected and subscribed to ``filters`` until ``stopping`` is set.

    ``before_connect`` is awaited before each attempt (a simulated device waits there
    while it is dead). ``on_up`` runs after each successful
    connect and subscribe (``client`` is set); it may do the owner's work for as long as
    the link serves, and an ``MqttError`` from it ends the connection like a lost one.
    ``on_down`` runs after each failed attempt or lost connection, with ``error`` saying
    why. Messages go to ``on_message``, or with the client that received them to
    ``on_message_from`` (a message may arrive before ``subscribe`` returns, before
    ``client`` is set, and its PUBACK belongs to that client). On stop the client is
    disconnected cleanly unless ``disconnect_on_stop`` is False (an owner that drains
    its in-flight work first and disconnects itself). ``name`` (default: the client id)
    names the session in log lines; ``quiet`` logs them at debug level (a simulator's
    hundreds of device sessions)."""

    def __init__(self, endpoint: Endpoint, client_id: str, filters: list[tuple[str, int]], *,
                 on_message: Callable[[Received], None] | None = None,
                 on_message_from: Callable[[Received, Client], None] | None = None,
                 persistent: bool = False, will: Will | None = None,
                 before_connect: Callable[[], Awaitable[None]] = _nothing,
                 on_up: Callable[[], Awaitable[None]] = _nothing,
                 on_down: Callable[[], Awaitable[None]] = _nothing,
                 disconnect_on_stop: bool = True, backoff: Backoff | None = None,
                 name: str | None = None, quiet: bool = False) -> None:
        self.endpoint, self.client_id, self.filters = endpoint, client_id, filters
        self.on_message, self.on_message_from = on_message, on_message_from
        self.persistent, self.will = persistent, will
        self.before_connect, self.on_up, self.on_down = before_connect, on_up, on_down
        self.disconnect_on_stop = disconnect_on_stop
        self.backoff = backoff or reconnect_backoff()
        self.name = name or client_id
        self._info, self._warn = (logging.DEBUG,) * 2 if quiet else (logging.INFO,
                                                                     logging.WARNING)
        self.client: Client | None = None
        self.error: MqttError | None = None  # why the last attempt or connection ended

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    def new_client(self) -> Client:
        e = self.endpoint
        holder: list[Client] = []  # the client, for on_message_from
        on_message = self.on_message
        if self.on_message_from is not None:
            on_message = partial(_from, self.on_message_from, holder)
        client = Client(e.host, e.port, self.client_id, username=e.username,
                        password=e.password, keepalive=e.keepalive,
                        clean_session=not self.persistent, will=self.will,
                        on_message=on_message, ssl=e.ssl, server_hostname=e.server_hostname)
        holder.append(client)
        return client

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            await self.before_connect()
            if stopping.is_set():
                return
            client = self.new_client()
            try:
                await client.connect()
                if self.filters:
                    await client.subscribe(self.filters)
                self.backoff.reset()
                self.client = client
                log.log(self._info, "MQTT %s connected to %s:%d (session kept: %s)",
                        self.name, self.endpoint.host, self.endpoint.port,
                        client.session_present)
                await self.on_up()
            except MqttError as e:
                client.abort()
                self.error = e
                delay = self.backoff.next_delay()
                log.log(self._warn, "MQTT %s: %s; retrying in %.1f s", self.name, e, delay)
                await self.on_down()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                continue
            closed = asyncio.ensure_future(client.wait_closed())
            stop = asyncio.ensure_future(stopping.wait())
            await asyncio.wait([closed, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if stopping.is_set():
                if not closed.done():
                    closed.cancel()
                elif not closed.cancelled():
                    closed.exception()  # retrieved: the owner ended it on the way out
                if self.disconnect_on_stop and client.connected:
                    await client.disconnect()
                return
            why = closed.exception()
            self.error = why if isinstance(why, MqttError) else None
            await self.on_down()
            log.log(self._warn, "MQTT %s lost: %s", self.name, self.error)


def _from(fn: Callable[[Received, Client], None], holder: list[Client], msg: Received) -> None:
    fn(msg, holder[0])
