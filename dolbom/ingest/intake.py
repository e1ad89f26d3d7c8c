"""The hot path: one MQTT message → decoded, checked against the registry, deduplicated,
its points (or the lookup of its first receive time) added to the batch filling now.

``on_message`` is synchronous and does no I/O; everything that waits happens in the
flush task. A message from a device not in the index is parked until the index is
re-read (``unpark``): maybe it was provisioned a moment ago.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from dolbom.ingest.backpressure import Backpressure
from dolbom.ingest.batch import Batch, Pending, Timed
from dolbom.ingest.dead import DeadLetters
from dolbom.ingest.decode import Rejection, decode_message
from dolbom.ingest.devices import DeviceIndex, Place
from dolbom.ingest.metrics import Counts
from dolbom.ingest.points import to_points, untimed_points
from dolbom.ingest.receive_times import Lookup, ReceiveTimes
from dolbom.ingest.rollup import Rollup
from dolbom.ingest.seen import SeenRecorder
from dolbom.ingest.settings import IngestSettings
from dolbom.mqtt import Received
from dolbom.protocol import Ack, Command, Event, Reason, Status, Telemetry, Topics
from dolbom.protocol.messages import device_time_plausible, point_ts


class Intake:
    def __init__(self, settings: IngestSettings, topics: Topics, clock: Callable[[], float], *,
                 pending: Pending, devices: DeviceIndex, dead: DeadLetters, counts: Counts,
                 seen: SeenRecorder, times: ReceiveTimes, rollup: Rollup,
                 backpressure: Backpressure) -> None:
        self.settings, self.topics, self.clock = settings, topics, clock
        self.pending, self.devices, self.dead, self.counts = pending, devices, dead, counts
        self.seen, self.times, self.rollup = seen, times, rollup
        self.backpressure = backpressure
        self.parked: list[tuple[Received, int]] = []
        self.flush_now = asyncio.Event()
        self._raw_ms = int(settings.raw_retention_s * 1000)

    def on_message(self, msg: Received) -> None:
        received_ms = int(self.clock() * 1000)
        self.counts.messages += 1
        self.handle(msg, received_ms)
        filling = len(self.pending.batch)
        if filling >= self.settings.batch_size:
            self.flush_now.set()
        if (filling + self.pending.inflight >= self.settings.max_pending
                and not self.backpressure.paused):
            self.backpressure.pause(True)

    def handle(self, msg: Received, received_ms: int) -> None:
        m = decode_message(self.topics, msg.topic, msg.payload)
        batch = self.pending.batch
        if isinstance(m, Rejection):
            self.dead.add(msg, m.reason.value, m.detail, m.device, received_ms)
            batch.acks.append(msg)
            return
        if isinstance(m, Ack | Command):
            batch.acks.append(msg)  # our own downlink, echoed by the `#` subscription
            return
        topic = m.topic
        dev = self.devices.index.get(topic.device)
        if dev is None:
            # Maybe provisioned a moment ago: hold it until the registry is re-read.
            self.parked.append((msg, received_ms))
            self.devices.refresh_wanted = True
            return
        # the index's own copy of the id, not the topic's: the per-device dicts below
        # keep the string they were first given
        device, place = dev.id, dev.place
        if place.site != topic.site:
            self.dead.add(msg, Reason.SITE_MISMATCH.value,
                          "topic site differs from the registry's", device, received_ms)
            batch.acks.append(msg)
            return
        counts = self.counts
        if isinstance(m, Status):
            self.seen.status[device] = (m.state, m.boot, m.fw)
        else:
            env = m.env
            if dev.duplicate(env.boot, env.seq):
                counts.duplicates += 1
                batch.acks.append(msg)
                return
            if isinstance(m, Event) and m.life_safety:
                counts.life_safety += 1
        counts.kinds[topic.kind] += 1
        tags = dev.tags()
        if isinstance(m, Status):
            for p in to_points(m, place.home, received_ms, tags):
                (batch.events if p.event else batch.telemetry).append(p.line)
        else:
            # DESIGN.md §3: the same time on every delivery of the message.
            env = m.env
            if device_time_plausible(env, received_ms, self._raw_ms):
                ahead = self.times.ahead
                if not ahead or env.ts > ahead.get(device, -1):
                    self._emit(m, place, tags, env.ts, batch)
                else:  # its clock ran ahead of ours: maybe first stored at our time
                    batch.timed.append(_timed(
                        m, place, tags, (device, env.boot, env.seq, received_ms, False, None)))
            else:
                ahead_ts = None
                if env.tq == 2 and env.ts > received_ms:
                    ahead_ts = env.ts
                    self.times.note_ahead(device, ahead_ts)
                # One point per series per ms: events, or readings, of one device that
                # arrive in the same ms (a gateway's or an outbox's backlog, read in one
                # go) each get a receive time of their own, 1 ms after the one before.
                given = batch.event_rx if type(m) is Event else batch.reading_rx
                last = given.get(device)
                if last is not None and received_ms <= last:
                    received_ms = last + 1
                given[device] = received_ms
                batch.timed.append(_timed(
                    m, place, tags, (device, env.boot, env.seq, received_ms, True, ahead_ts)))
        self.seen.new[device] = received_ms
        batch.acks.append(msg)

    def _emit(self, m: Event | Telemetry, place: Place, tags: str, base_ms: int,
              batch: Batch) -> None:
        """Add a message's points (and its readings to the home's rollup) at ``base_ms``:
        ``to_points``' lines, built here without a Point per line."""
        lines = batch.events if type(m) is Event else batch.telemetry
        for line, offset in untimed_points(m, tags):
            lines.append(f"{line} {base_ms + offset}".encode())
        if place.home is not None and type(m) is Telemetry:
            env = m.env
            for s in m.samples:
                if s.readings:
                    self.rollup.add(place.site, place.home, point_ts(env, s.ts, base_ms),
                                    s.readings)

    def unpark(self) -> None:
        """Handle the parked messages against the index just re-read: a device still not
        in it is dead-lettered."""
        parked, self.parked = self.parked, []
        for msg, received_ms in parked:
            parsed = self.topics.parse(msg.topic)
            if parsed is not None and parsed.device not in self.devices.index:
                self.dead.add(msg, Reason.UNKNOWN_DEVICE.value,
                              "device is not in the registry (or revoked)", parsed.device,
                              received_ms)
                self.pending.batch.acks.append(msg)
                continue
            self.handle(msg, received_ms)


def _timed(m: Event | Telemetry, place: Place, tags: str, lookup: Lookup) -> Timed:
    env = m.env
    readings = () if place.home is None or type(m) is not Telemetry else tuple(
        (s.ts - env.ts, tuple(s.readings.items())) for s in m.samples if s.readings)
    return (lookup, env.ts, type(m) is Event, untimed_points(m, tags), place.site, place.home,
            readings)
