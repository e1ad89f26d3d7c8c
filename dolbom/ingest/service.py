"""The ingest service: MQTT → decode → enrich → points → InfluxDB (or spool) → PUBACK.

Delivery (DESIGN.md §3, STYLE.md "Delivery semantics"): the service subscribes
with a persistent session at QoS 1 and acknowledges each message only after
what depends on it is durable — its points in InfluxDB or in the fsync'd disk
spool, its dead letter in the registry database. If the service dies first,
the broker delivers the message again; duplicates are dropped by
``(dev, boot, seq)`` and InfluxDB's explicit timestamps make re-writes idempotent:
a point's time is the same on every delivery (DESIGN.md §3), the device's when it is
plausible, else the first receive time, kept durably (``receive_times``) before the
point is written.

The hot path (``on_message``) is synchronous and does no I/O; everything that
waits (HTTP, fsync, SQL, the first receive times) happens in the flush task, one
batch at a time, while the next batch fills. Past ``max_pending`` undurable
messages, reading from the broker pauses: memory is bounded and the broker holds
the backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeAlias

from aiohttp import web

from dolbom.influx.errors import Rejected, RetryLater
from dolbom.influx.spool import Spool
from dolbom.influx.writer import InfluxWriter
from dolbom.ingest.decode import Rejection, decode_message
from dolbom.ingest.metrics import IngestMetrics
from dolbom.ingest.points import series_tags, to_points, untimed_points
from dolbom.ingest.receive_times import Lookup, ReceiveTimes
from dolbom.ingest.rollup import Rollup
from dolbom.ingest.selfstats import DEFAULT_INTERVAL_S, SelfStats
from dolbom.ingest.settings import IngestSettings
from dolbom.metrics_http import serve_metrics
from dolbom.mqtt import Backoff, Client, MqttError, Received
from dolbom.protocol import (
    Ack,
    Command,
    Event,
    Kind,
    Reason,
    Status,
    Telemetry,
    Topics,
)
from dolbom.protocol.dedup import Deduper
from dolbom.protocol.messages import device_time_plausible, point_ts
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory

log = logging.getLogger("dolbom.ingest")

MAX_DEAD_PAYLOAD = 4096
SEEN_CHUNK = 500  # devices per last-seen transaction (a short hold of the write lock)
PRUNE_EVERY_MS = 60_000  # first receive times past their retention are deleted this often


# A message whose time the first-receive-time store decides at the next flush:
# ``(lookup, env_ts, event, lines, site, home, readings)``: ``env_ts`` is the base when a
# read-only lookup finds nothing; ``lines`` its points without their time and
# ``readings`` those for the home's rollup, each with its offset from the message's time.
# Plain tuples of plain values, no decoded objects: the garbage collector stops tracking
# them, so the thousands a batch holds cost it nothing (a class cost ~7 µs a message).
# (Readings are kept as their items: a tuple holding a dict is always tracked.)
Timed: TypeAlias = tuple[Lookup, int, bool, tuple[tuple[str, int], ...], str, "str | None",
                         tuple[tuple[int, tuple[tuple[str, float], ...]], ...]]


@dataclass(slots=True)
class Batch:
    events: list[bytes] = field(default_factory=list)
    telemetry: list[bytes] = field(default_factory=list)
    acks: list[Received] = field(default_factory=list)
    dead: list[registry.DeadLetterIn] = field(default_factory=list)
    timed: list[Timed] = field(default_factory=list)  # points not made yet (``stamp``)
    # The receive time last given to a device's event / reading timed by our clock.
    event_rx: dict[str, int] = field(default_factory=dict)
    reading_rx: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.acks)

    @property
    def points(self) -> int:
        return len(self.events) + len(self.telemetry)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Counts for the demo's terminal display and for tests."""

    mqtt_connected: bool
    influx_up: bool
    messages: int
    points_written: int
    dead_letters: int
    duplicates: int
    devices_seen: int
    spool_files: int
    pending: int
    life_safety_events: int


class Ingest:
    def __init__(self, settings: IngestSettings, *, clock: Callable[[], float] = time.time,
                 self_stats_s: float = DEFAULT_INTERVAL_S) -> None:
        self.settings = settings
        self.clock = clock
        self.topics = Topics(settings.mqtt.topic_prefix)
        self.metrics = IngestMetrics()
        self.dedup = Deduper()
        self.spool = Spool(settings.spool_dir, settings.spool_max_telemetry_bytes)
        self.times = ReceiveTimes(settings.spool_dir / "receive-times.sqlite",
                                  int(settings.receive_times_retention_s * 1000))
        self._raw_ms = int(settings.raw_retention_s * 1000)
        self._pruned_at = 0  # ms, on self.clock
        self._sessions = session_factory(settings.database_url)
        self.index: dict[str, registry.DeviceRef] = {}
        self._index_version: tuple[Any, ...] | None = None
        self._tags: dict[str, str] = {}  # device -> its line-protocol tag set
        self.batch = Batch()
        self.parked: list[tuple[Received, int]] = []
        # last receive time (ms) and last status per device since the last registry write
        self._seen_new: dict[str, int] = {}
        self._status: dict[str, tuple[str, int | None, str | None]] = {}
        self.devices_seen: set[str] = set()
        self._kinds: Counter[Kind] = Counter()
        self._dead_reasons: Counter[str] = Counter()
        self._reported: dict[str, float] = {}
        self._flush_now = asyncio.Event()
        self._refresh_wanted = False
        self._last_refresh = 0.0
        self.client: Client | None = None
        self._paused = False
        self.influx_healthy = True
        self.stopping = asyncio.Event()
        # plain counters for the snapshot (prometheus counters are for scraping)
        self.n_messages = self.n_points = self.n_dead = self.n_dup = self.n_life_safety = 0
        self._inflight = 0  # messages in a flush not yet acked
        self._drops_reported = 0
        self._dead_log: dict[str, tuple[float, int]] = {}
        self.writer = InfluxWriter(settings.influx)
        self.rollup = Rollup(settings.rollup_grace_s)
        self._rollup_lines: deque[bytes] = deque()  # closed minutes not yet written
        self._rollup_dropped = 0
        # dead letters, spool and write latency for the dashboards (Grafana reads InfluxDB)
        self.selfstats = SelfStats(self.metrics.registry, self.writer, settings.client_id,
                                   clock=clock, interval_s=self_stats_s,
                                   before=self._sync_metrics)

    # ------------------------------------------------------------------ hot path
    def on_message(self, msg: Received) -> None:
        received_ms = int(self.clock() * 1000)
        self.n_messages += 1
        self._handle(msg, received_ms)
        pending = len(self.batch) + self._inflight
        if len(self.batch) >= self.settings.batch_size:
            self._flush_now.set()
        if pending >= self.settings.max_pending and not self._paused:
            self._pause(True)

    def _handle(self, msg: Received, received_ms: int) -> None:
        m = decode_message(self.topics, msg.topic, msg.payload)
        batch = self.batch
        if isinstance(m, Rejection):
            self._dead(msg, m.reason.value, m.detail, m.device, received_ms)
            batch.acks.append(msg)
            return
        if isinstance(m, Ack | Command):
            batch.acks.append(msg)  # our own downlink, echoed by the `#` subscription
            return
        topic = m.topic
        device = topic.device
        ref = self.index.get(device)
        if ref is None:
            # Maybe provisioned a moment ago: hold it until the registry is re-read.
            self.parked.append((msg, received_ms))
            self._refresh_wanted = True
            return
        if ref.site != topic.site:
            self._dead(msg, Reason.SITE_MISMATCH.value,
                       "topic site differs from the registry's", device, received_ms)
            batch.acks.append(msg)
            return
        if isinstance(m, Status):
            self._status[device] = (m.state, m.boot, m.fw)
        else:
            env = m.env
            if self.dedup.seen(device, env.boot, env.seq):
                self.n_dup += 1
                batch.acks.append(msg)
                return
            if isinstance(m, Event) and m.life_safety:
                self.n_life_safety += 1
        # Per-message counts are plain ints here, copied into Prometheus at each
        # flush: a labelled counter per message costs more than decoding it.
        self._kinds[topic.kind] += 1
        tags = self._tags.get(device)
        if tags is None:  # escaped once per device (cleared when the index is re-read)
            tags = self._tags[device] = series_tags(ref.site, ref.home, device)
        if isinstance(m, Status):
            for p in to_points(m, ref.home, received_ms, tags):
                (batch.events if p.event else batch.telemetry).append(p.line)
        else:
            # DESIGN.md §3: the same time on every delivery of the message.
            env = m.env
            if device_time_plausible(env, received_ms, self._raw_ms):
                ahead = self.times.ahead
                if not ahead or env.ts > ahead.get(device, -1):
                    self._emit(m, ref, tags, env.ts, batch)
                else:  # its clock ran ahead of ours: maybe first stored at our time
                    batch.timed.append(self._timed(
                        m, ref, tags, (device, env.boot, env.seq, received_ms, False, None)))
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
                batch.timed.append(self._timed(
                    m, ref, tags, (device, env.boot, env.seq, received_ms, True, ahead_ts)))
        self._seen_new[device] = received_ms
        batch.acks.append(msg)

    @staticmethod
    def _timed(m: Event | Telemetry, ref: registry.DeviceRef, tags: str,
               lookup: Lookup) -> Timed:
        env = m.env
        readings = () if ref.home is None or type(m) is not Telemetry else tuple(
            (s.ts - env.ts, tuple(s.readings.items())) for s in m.samples if s.readings)
        return (lookup, env.ts, type(m) is Event, untimed_points(m, tags), ref.site, ref.home,
                readings)

    def _emit(self, m: Event | Telemetry, ref: registry.DeviceRef, tags: str, base_ms: int,
              batch: Batch) -> None:
        """Add a message's points (and its readings to the home's rollup) at ``base_ms``."""
        for p in to_points(m, ref.home, base_ms, tags, base_ms):
            (batch.events if p.event else batch.telemetry).append(p.line)
        if ref.home is not None and type(m) is Telemetry:
            env = m.env
            for s in m.samples:
                if s.readings:
                    self.rollup.add(ref.site, ref.home, point_ts(env, s.ts, base_ms),
                                    s.readings)

    async def stamp(self, batch: Batch) -> None:
        """Give the batch's messages timed by our clock their first receive time, recorded
        durably before this returns (so before their points are written), and add their
        points to the batch. Also prunes the store now and then."""
        now_ms = int(self.clock() * 1000)
        prune = now_ms - self._pruned_at >= PRUNE_EVERY_MS
        if not batch.timed and not prune:
            return
        timed = batch.timed
        lookups = [t[0] for t in timed]

        def resolve() -> list[int | None]:
            out = self.times.resolve(lookups)
            if prune:
                self.times.prune(now_ms)
            return out

        bases = await asyncio.to_thread(resolve)
        if prune:
            self._pruned_at = now_ms
        batch.timed = []
        rollup = self.rollup
        for (_, env_ts, event, lines, site, home, samples), found in zip(
                timed, bases, strict=True):
            base = env_ts if found is None else found
            out = batch.events if event else batch.telemetry
            for line, offset in lines:
                out.append(f"{line} {base + offset}".encode())
            if home is not None:
                for offset, readings in samples:
                    rollup.add(site, home, base + offset, dict(readings))

    def close(self) -> None:
        self.times.close()

    def _dead(self, msg: Received, reason: str, detail: str, device: str | None,
              received_ms: int) -> None:
        self.n_dead += 1
        self._dead_reasons[reason] += 1
        self._log_dead(reason, detail, msg)
        self.batch.dead.append(registry.DeadLetterIn(
            received_at=datetime.fromtimestamp(received_ms / 1000, UTC),
            topic=msg.topic[:1024], device=device, reason=reason, detail=detail[:500],
            payload=msg.payload[:MAX_DEAD_PAYLOAD],
        ))

    def _log_dead(self, reason: str, detail: str, msg: Received) -> None:
        """One log line per reason per minute (a flood must not flood the log too).

        Counts live in metrics; the payload is health data and goes to debug only.
        """
        now = time.monotonic()
        last, suppressed = self._dead_log.get(reason, (0.0, 0))
        if now - last < 60.0:
            self._dead_log[reason] = (last, suppressed + 1)
        else:
            more = f" (+{suppressed} more since the last line)" if suppressed else ""
            log.warning("dead letter: %s (%s) on %s%s", reason, detail, msg.topic[:200], more)
            self._dead_log[reason] = (now, 0)
        log.debug("dead letter payload: %r", msg.payload[:200])

    def _pause(self, paused: bool) -> None:
        self._paused = paused
        if self.client is not None:
            (self.client.pause_reading if paused else self.client.resume_reading)("backlog")

    # ------------------------------------------------------------------ durability
    async def flush(self) -> None:
        """Make the current batch durable, then acknowledge its messages in order."""
        batch, self.batch = self.batch, Batch()
        if not batch.acks and not batch.dead:
            return
        self._inflight = len(batch)
        self.metrics.pending.set(self._inflight)
        started = time.monotonic()
        try:
            try:
                await self.stamp(batch)
            except Exception:
                log.exception("could not record first receive times; the batch waits")
                self._requeue(batch)
                return
            await self._store_points(batch)
            if batch.dead:
                await self._store_dead(batch.dead)
        finally:
            self._inflight = 0
        client = self.client
        if client is not None and client.connected:
            client.ack_many(batch.acks)
        self.metrics.flush_seconds.observe(time.monotonic() - started)
        self._sync_metrics()
        if self._paused and len(self.batch) < self.settings.max_pending // 2:
            self._pause(False)

    def _requeue(self, old: Batch) -> None:
        """Put a batch that could not be made durable back in front of the current one."""
        new = self.batch
        self.batch = Batch(old.events + new.events, old.telemetry + new.telemetry,
                           old.acks + new.acks, old.dead + new.dead, old.timed + new.timed)

    def _sync_metrics(self) -> None:
        """Copy the hot path's plain counters into the Prometheus counters."""
        m = self.metrics
        for kind, n in self._kinds.items():
            self._inc(m.messages.labels(kind.value), f"k:{kind}", n)
        for reason, n in self._dead_reasons.items():
            self._inc(m.dead_letters.labels(reason), f"d:{reason}", n)
        self._inc(m.duplicates, "dup", self.n_dup)

    def _inc(self, counter: Any, key: str, total: float) -> None:
        delta = total - self._reported.get(key, 0)
        if delta:
            counter.inc(delta)
            self._reported[key] = total

    async def _store_points(self, batch: Batch) -> None:
        lines = batch.events + batch.telemetry
        if not lines:
            return
        if self.influx_healthy:
            backoff = Backoff(self.settings.retry_initial_s, self.settings.retry_max_s)
            for attempt in range(self.settings.retries_before_spool + 1):
                try:
                    rejected = await self.writer.write(lines)
                except RetryLater as e:
                    self.metrics.write_errors.inc()
                    if attempt == self.settings.retries_before_spool:
                        log.warning("InfluxDB unavailable, spooling to disk: %s", e)
                        self.influx_healthy = False
                        self.metrics.influx_up.set(0)
                        break
                    await asyncio.sleep(backoff.next_delay())
                    continue
                good = len(lines) - sum(len(r.lines) for r in rejected)
                self.n_points += good
                self.metrics.points.inc(good)
                self.metrics.influx_up.set(1)
                self._reject(rejected)
                return
        # InfluxDB is down: durable on disk instead, replayed by `replay`.
        await asyncio.to_thread(self._spool_batch, batch)
        self.metrics.spooled.inc(len(lines))
        self.metrics.spool_files.set(len(self.spool))
        self._count_spool_drops()

    def _count_spool_drops(self) -> None:
        new = self.spool.dropped_points - self._drops_reported
        if new:
            log.warning("spool full: dropped %d oldest telemetry points", new)
            self.metrics.spool_dropped.inc(new)
            self._drops_reported += new

    def _spool_batch(self, batch: Batch) -> None:
        self.spool.put(batch.events, event=True)
        self.spool.put(batch.telemetry, event=False)

    def _reject(self, rejected: list[Rejected]) -> None:
        now = datetime.now(UTC)
        for r in rejected:
            for line in r.lines:
                self.n_dead += 1
                self._dead_reasons["influx_rejected"] += 1
                self.batch.dead.append(registry.DeadLetterIn(
                    received_at=now, topic="", device=None, reason="influx_rejected",
                    detail=r.reason[:500], payload=line[:MAX_DEAD_PAYLOAD],
                ))
            log.warning("InfluxDB rejected %d line(s): %s", len(r.lines), r.reason[:200])

    async def _store_dead(self, dead: list[registry.DeadLetterIn]) -> None:
        def insert() -> None:
            with self._sessions.begin() as s:
                registry.add_dead_letters(s, dead)

        try:
            await asyncio.to_thread(insert)
        except Exception:
            log.exception("could not store %d dead letters; keeping them for the next flush",
                          len(dead))
            self.batch.dead.extend(dead)

    # ------------------------------------------------------------------ rollups
    async def write_rollups(self, *, everything: bool = False) -> None:
        """Write the rollups of the minutes that have closed (``everything``: also the
        open ones, at shutdown). While InfluxDB is down they wait here, the oldest
        dropped (and counted) past ``rollup_max_pending``: raw points are the record,
        rollups can be rebuilt from them."""
        r = self.rollup
        late = r.late
        self._rollup_lines.extend(
            r.flush_all() if everything else r.due(int(self.clock() * 1000)))
        self._inc(self.metrics.rollup_late, "rollup-late", late)
        over = len(self._rollup_lines) - self.settings.rollup_max_pending
        for _ in range(max(0, over)):
            self._rollup_lines.popleft()
            self._rollup_dropped += 1
        self._inc(self.metrics.rollup_dropped, "rollup-dropped", self._rollup_dropped)
        size = self.settings.batch_size
        while self._rollup_lines:
            chunk = [self._rollup_lines[i] for i in range(min(size, len(self._rollup_lines)))]
            try:
                rejected = await self.writer.write(chunk, self.settings.rollup_rp)
            except RetryLater as e:
                log.debug("rollups wait for InfluxDB: %s", e)
                return
            for _ in chunk:
                self._rollup_lines.popleft()
            self.metrics.rollup_points.inc(len(chunk) - sum(len(x.lines) for x in rejected))
            self._reject(rejected)

    async def rollup_writer(self) -> None:
        while not self.stopping.is_set():
            await self._sleep(5.0)
            try:
                await self.write_rollups()
            except Exception:
                log.exception("rollup write failed; retrying")

    # ------------------------------------------------------------------ tasks
    async def flusher(self) -> None:
        interval = self.settings.flush_interval_s
        while not self.stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._flush_now.wait(), interval)
            self._flush_now.clear()
            if self._refresh_wanted and time.monotonic() - self._last_refresh >= 1.0:
                await self.refresh_index()
            await self.flush()

    async def replay(self) -> None:
        """While the spool has batches, probe InfluxDB and write them back, oldest first."""
        backoff = Backoff(self.settings.retry_initial_s, self.settings.retry_max_s)
        while not self.stopping.is_set():
            f = self.spool.oldest()
            if f is None:
                if not self.influx_healthy:
                    self.influx_healthy = True
                    self.metrics.influx_up.set(1)
                    log.info("InfluxDB is back; spool drained")
                await self._sleep(1.0)
                continue
            lines = await asyncio.to_thread(self.spool.read, f)
            try:
                rejected = await self.writer.write(lines)
            except RetryLater:
                await self._sleep(backoff.next_delay())
                continue
            backoff.reset()
            self.influx_healthy = True  # new batches go straight to InfluxDB again
            self.metrics.influx_up.set(1)
            good = len(lines) - sum(len(r.lines) for r in rejected)
            self.n_points += good
            self.metrics.points.inc(good)
            self.metrics.replayed.inc(good)
            self._reject(rejected)
            await asyncio.to_thread(self.spool.done, f)
            self.metrics.spool_files.set(len(self.spool))
            self._count_spool_drops()

    async def refresh_index(self) -> None:
        """Re-read the device index if a device was added or revoked since the last read."""
        known = self._index_version

        def load() -> tuple[tuple[Any, ...], dict[str, registry.DeviceRef] | None]:
            with self._sessions() as s:
                version = registry.device_index_version(s)
                if version == known:
                    return version, None  # unchanged: no need to rebuild it
                return version, registry.device_index(s)

        self._last_refresh = time.monotonic()
        self._refresh_wanted = False
        try:
            version, index = await asyncio.to_thread(load)
        except Exception:
            log.exception("could not read the device registry; keeping the cached one")
            return
        if index is not None:
            self.index, self._index_version = index, version
            self._tags = {}
        parked, self.parked = self.parked, []
        for msg, received_ms in parked:
            parsed = self.topics.parse(msg.topic)
            if parsed is not None and parsed.device not in self.index:
                self._dead(msg, Reason.UNKNOWN_DEVICE.value,
                           "device is not in the registry (or revoked)", parsed.device,
                           received_ms)
                self.batch.acks.append(msg)
                continue
            self._handle(msg, received_ms)

    async def registry_refresher(self) -> None:
        while not self.stopping.is_set():
            await self._sleep(self.settings.registry_refresh_s)
            await self.refresh_index()

    async def seen_writer(self) -> None:
        while not self.stopping.is_set():
            await self._sleep(self.settings.seen_flush_s)
            await self.write_seen()

    async def write_seen(self) -> None:
        if not self._seen_new:
            return
        seen, self._seen_new = self._seen_new, {}
        status, self._status = self._status, {}
        self.devices_seen.update(seen)
        self.metrics.devices_online.set(len(self.devices_seen))
        rows = [(d, datetime.fromtimestamp(ms / 1000, UTC), *status.get(d, (None, None, None)))
                for d, ms in seen.items()]

        def update() -> None:
            # In chunks: one transaction per chunk, so a whole fleet's update never
            # holds the (SQLite) write lock long enough to delay an alarm's journal.
            for i in range(0, len(rows), SEEN_CHUNK):
                with self._sessions.begin() as s:
                    registry.update_device_seen(s, rows[i:i + SEEN_CHUNK])

        try:
            await asyncio.to_thread(update)
        except Exception:
            log.exception("could not record last-seen times; will retry")
            for d, ms in seen.items():
                self._seen_new.setdefault(d, ms)
            for d, st in status.items():
                self._status.setdefault(d, st)

    async def mqtt_loop(self) -> None:
        s = self.settings.mqtt
        backoff = Backoff(0.5, 30.0)
        tls = s.ssl_context()  # None: plaintext, loopback only (DESIGN.md §2)
        while not self.stopping.is_set():
            client = Client(
                s.host, s.port, self.settings.client_id, username=s.username,
                password=s.password.get_secret_value() if s.password else None,
                keepalive=s.keepalive, clean_session=False, on_message=self.on_message,
                ssl=tls, server_hostname=s.tls.server_hostname,
            )
            try:
                await client.connect()
                await client.subscribe([(self.topics.uplink_filter(), 1)])
            except MqttError as e:
                delay = backoff.next_delay()
                log.warning("MQTT: %s; retrying in %.1f s", e, delay)
                await self._sleep(delay)
                continue
            backoff.reset()
            self.client = client
            self.metrics.mqtt_connects.inc()
            self.metrics.mqtt_up.set(1)
            log.info("MQTT connected to %s:%d (session kept: %s)", s.host, s.port,
                     client.session_present)
            stop_wait = asyncio.ensure_future(self.stopping.wait())
            closed = asyncio.ensure_future(client.wait_closed())
            await asyncio.wait({stop_wait, closed}, return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            self.metrics.mqtt_up.set(0)
            if closed.done():
                exc = closed.exception()
                log.warning("MQTT connection lost: %s", exc)
                continue
            closed.cancel()
            return  # stopping: `run` drains and disconnects

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def snapshot(self) -> Snapshot:
        return Snapshot(
            mqtt_connected=self.client is not None and self.client.connected,
            influx_up=self.influx_healthy, messages=self.n_messages,
            points_written=self.n_points, dead_letters=self.n_dead, duplicates=self.n_dup,
            devices_seen=len(self.devices_seen | self._seen_new.keys()),
            spool_files=len(self.spool),
            pending=len(self.batch) + self._inflight, life_safety_events=self.n_life_safety,
        )

    # ------------------------------------------------------------------ metrics
    async def _metrics_app(self) -> web.AppRunner | None:
        def health() -> tuple[bool, dict[str, object]]:
            snap = self.snapshot()
            return snap.mqtt_connected, dataclasses.asdict(snap)

        return await serve_metrics(self.settings.metrics_host, self.settings.metrics_port,
                                   self.metrics.registry, health,
                                   before_scrape=self._sync_metrics)

    # ------------------------------------------------------------------ lifecycle
    async def run(self) -> None:
        """Run until ``stopping`` is set; then drain in-flight work within a deadline."""
        await self.refresh_index()
        runner = await self._metrics_app()
        async with self.writer:
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.mqtt_loop(), name="mqtt")
                    tg.create_task(self.flusher(), name="flusher")
                    tg.create_task(self.replay(), name="replay")
                    tg.create_task(self.registry_refresher(), name="registry")
                    tg.create_task(self.seen_writer(), name="seen")
                    tg.create_task(self.rollup_writer(), name="rollups")
                    tg.create_task(self.selfstats.run(self.stopping), name="self-stats")
            finally:
                await self._drain()
                self.close()
                if runner is not None:
                    await runner.cleanup()

    async def _drain(self) -> None:
        self._pause(True)
        try:
            await asyncio.wait_for(self._final_flush(), self.settings.drain_timeout_s)
        except TimeoutError:
            log.error("drain deadline passed; unacknowledged messages stay with the broker")
        if self.client is not None:
            await self.client.disconnect()

    async def _final_flush(self) -> None:
        await self.flush()
        await self.write_seen()
        await self.write_rollups(everything=True)
        await self.flush()  # dead letters of rollup lines InfluxDB refused, if any
