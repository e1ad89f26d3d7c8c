"""What the children publish on the home's broker → the queue on disk, then the local
PUBACKs, in order of receipt (DESIGN.md §3: acknowledge only what is durable).

Messages are committed in batches: the first message of a batch waits ``LINGER_S`` for
more; a batch of telemetry alone waits up to ``TELEMETRY_LINGER_S`` (or until
``BATCH_MAX`` messages, or until anything else arrives), so that at a steady rate one
commit, one local PUBACK write and one write to the central broker serve many readings.
An event or a status is never held longer than ``LINGER_S`` and its batch is fsync'd
before its PUBACK (``dolbom.gateway.queue``)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable

from dolbom.gateway.bridge import Bridge
from dolbom.gateway.classify import Refused, classify
from dolbom.gateway.errors import QueueError
from dolbom.gateway.queue import Item, Queue
from dolbom.mqtt import Client, Received
from dolbom.protocol import Topics

log = logging.getLogger("dolbom.gateway")

LINGER_S = 0.005  # batch a burst into one commit
TELEMETRY_LINGER_S = 0.5  # readings alone wait this long for more (PUBACK, forwarding)
BATCH_MAX = 500  # ... or until this many have arrived


class Intake:
    """Receives the local session's messages (``on_message``) and commits them (``run``)."""

    def __init__(self, topics: Topics, site: str, children: frozenset[str],
                 bridges: list[Bridge], queue: Queue, refused: Counter[str], *,
                 live: Callable[[], bool], queued: Callable[[], None],
                 ms: Callable[[], int], sleep: Callable[[float], Awaitable[None]]) -> None:
        self.topics, self.site, self.children, self.bridges = topics, site, children, bridges
        self.queue, self.refused = queue, refused
        self.live, self.queued, self.ms, self.sleep = live, queued, ms, sleep
        self.write_errors = 0
        self._inbox: list[tuple[Received, Client]] = []
        self._inbox_ev = asyncio.Event()  # the inbox is not empty
        self._flush_ev = asyncio.Event()  # commit it now (no more telemetry linger)
        self._urgent = False  # the inbox holds more than telemetry

    def on_message(self, msg: Received, client: Client) -> None:
        self._inbox.append((msg, client))
        self._inbox_ev.set()
        if not msg.topic.endswith("/telemetry") or len(self._inbox) >= BATCH_MAX:
            self._urgent = True
            self._flush_ev.set()

    def _translate(self, msg: Received, rx_ms: int, live: bool) -> list[Item] | Refused:
        for b in self.bridges:
            if b.handles(msg.topic):
                return b.translate(msg.topic, msg.payload, rx_ms, live)
        r = classify(self.topics, self.site, self.children, msg.topic, msg.payload,
                     msg.retain, rx_ms, live)
        return r if isinstance(r, Refused) else [r]

    async def run(self) -> None:
        """Commit what arrived, then PUBACK it locally (in order of receipt)."""
        loop = asyncio.get_running_loop()
        while True:
            await self._inbox_ev.wait()
            # A moment for more to arrive: one commit for a burst, not per message (at
            # most LINGER_S more before the PUBACK of an event).
            await asyncio.sleep(LINGER_S)
            if not self._urgent:
                # Telemetry alone: longer, unless an event or a status comes meanwhile.
                self._flush_ev.clear()
                timer = loop.call_later(TELEMETRY_LINGER_S - LINGER_S, self._flush_ev.set)
                await self._flush_ev.wait()
                timer.cancel()
            self._inbox_ev.clear()
            self._urgent = False
            batch, self._inbox = self._inbox, []
            if not batch:
                continue
            rx_ms = self.ms()
            live = self.live()
            items: list[Item] = []
            for msg, _ in batch:
                r = self._translate(msg, rx_ms, live)
                if isinstance(r, Refused):
                    self.refused[r.reason] += 1
                else:
                    items += r
            try:
                self.queue.put_many(items)
            except QueueError as e:
                # Not on disk: no PUBACK. Drop the local connection so the broker
                # delivers these again; the devices' own outboxes keep their alarms.
                self.write_errors += 1
                log.error("%s; the local broker will deliver again", e)
                for _, client in batch:
                    client.abort()
                await self.sleep(1.0)
                continue
            by_client: dict[int, tuple[Client, list[Received]]] = {}
            for msg, client in batch:
                by_client.setdefault(id(client), (client, []))[1].append(msg)
            for client, msgs in by_client.values():
                client.ack_many(msgs)
            self.queued()
