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

    ``on_up`` runs after each successful connect and subscribe (``client`` is set),
    ``on_down`` after each lost connection or failed attempt. On stop the client is
    disconnected cleanly unless ``disconnect_on_stop`` is False (an owner that drains
    its in-flight work first and disconnects itself)."""

    def __init__(self, endpoint: Endpoint, client_id: str, filters: list[tuple[str, int]], *,
                 on_message: Callable[[Received], None] | None = None,
                 persistent: bool = False, will: Will | None = None,
                 on_up: Callable[[], Awaitable[None]] = _nothing,
                 on_down: Callable[[], Awaitable[None]] = _nothing,
                 disconnect_on_stop: bool = True, backoff: Backoff | None = None) -> None:
        self.endpoint, self.client_id, self.filters = endpoint, client_id, filters
        self.on_message, self.persistent, self.will = on_message, persistent, will
        self.on_up, self.on_down = on_up, on_down
        self.disconnect_on_stop = disconnect_on_stop
        self.backoff = backoff or reconnect_backoff()
        self.client: Client | None = None

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    def new_client(self) -> Client:
        e = self.endpoint
        return Client(e.host, e.port, self.client_id, username=e.username,
                      password=e.password, keepalive=e.keepalive,
                      clean_session=not self.persistent, will=self.will,
                      on_message=self.on_message, ssl=e.ssl,
                      server_hostname=e.server_hostname)

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            client = self.new_client()
            try:
                await client.connect()
                if self.filters:
                    await client.subscribe(self.filters)
            except MqttError as e:
                client.abort()
                delay = self.backoff.next_delay()
                log.warning("MQTT %s: %s; retrying in %.1f s", self.client_id, e, delay)
                await self.on_down()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), delay)
                continue
            self.backoff.reset()
            self.client = client
            await self.on_up()
            log.info("MQTT %s connected to %s:%d (session kept: %s)", self.client_id,
                     self.endpoint.host, self.endpoint.port, client.session_present)
            closed = asyncio.ensure_future(client.wait_closed())
            stop = asyncio.ensure_future(stopping.wait())
            await asyncio.wait([closed, stop], return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            if stop.done() and not closed.done():
                closed.cancel()
                if self.disconnect_on_stop:
                    await client.disconnect()
                return
            await self.on_down()
            log.warning("MQTT %s lost: %s", self.client_id, closed.exception())
