"""A simulated care home in a real InfluxDB, written the way Dolbom's services write it.

The dashboards' queries are proven (tests) and pictured (docs/dashboards.md) over this
data, so it comes from the project's own code at every step:

1. the care-outcome population generator (``dolbom.eval.population``) makes a few homes'
   devices and lives as contract v1 MQTT messages, plus a few button presses;
2. each message goes through ingest's pure path, as the service runs it: decode
   (``dolbom.ingest.decode``), points at the message's time (``dolbom.ingest.points``),
   the per-home 1-minute rollup (``dolbom.ingest.rollup``); the 1-hour rollup is the
   continuous query's own SELECT (``dolbom.stack.influx.rollup_1h_select``) run over
   the range;
3. the alert rules run over the same messages exactly as the service runs them
   (``dolbom.alerts.replay``); what they raise goes through the real alert lifecycle
   on a SQLite registry, with two simulated care workers who acknowledge, get
   escalated and resolve; the alerts service's own export lines
   (``dolbom.alerts.export``) turn that journal into the ``alert`` and
   ``alert_response`` points, and the homes' modes (a resident goes to hospital) into
   ``home_mode`` points at the times the service writes them;
4. ingest's self-stats lines (``dolbom.ingest.selfstats``) are made minute by minute
   from ingest's own metrics, driven with the points stored, a few faulty messages
   (dead letters), seeded flush times and a 40-minute InfluxDB outage (the spool).

Written with the ingest user (write-only), read back by the tests with the read-only
dashboard user, as Grafana would.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from dolbom.alerts import export
from dolbom.alerts import lifecycle as lc
from dolbom.alerts.model import (
    RULE_CLASS,
    AlertClass,
    EscalationTable,
    Outcome,
    Priority,
    Rule,
    Thresholds,
)
from dolbom.alerts.replay import replay
from dolbom.alerts.rules.base import HomeConfig
from dolbom.eval.population import DAY_MS, generate_home
from dolbom.influx.admin import InfluxHTTP
from dolbom.influx.influxql import rollup_1h_select
from dolbom.ingest.decode import Rejection, decode_message
from dolbom.ingest.metrics import IngestMetrics
from dolbom.ingest.points import to_points
from dolbom.ingest.rollup import Rollup
from dolbom.ingest.selfstats import Totals, read_totals, stats_lines
from dolbom.protocol import Envelope, Reason, Telemetry, Topics, encode_event
from dolbom.protocol.messages import device_time_plausible, point_ts
from dolbom.registry import service as registry
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import User, UserRole

PREFIX = "care/v1"
SEED = 5
# (population index, what the home is made to have): a flat battery, the detailed home
# (bed, door, plug, a gateway whose outage loses its devices for a while), a home without
# extras, one with an unplugged plug, and a home of a second site.
HOMES: tuple[tuple[int, frozenset[str]], ...] = (
    (0, frozenset({"flat_battery"})),
    (1, frozenset({"gateway_outage"})),
    (2, frozenset()),
    (3, frozenset({"unplugged"})),
    (50, frozenset()),
)
DETAILED_HOME = "h00001"


@dataclass
class CareHome:
    """What was written: the range, the homes and how many points of each kind."""

    start_ms: int
    end_ms: int
    homes: list[dict[str, Any]]
    points: dict[str, int] = field(default_factory=dict)
    alerts: int = 0

    @property
    def sites(self) -> list[str]:
        return sorted({h["site"] for h in self.homes})

    def homes_of(self, site: str) -> list[str]:
        return sorted(h["home"] for h in self.homes if h["site"] == site)


def _button_presses(spec: dict[str, Any], start_ms: int, days: int,
                    rng: random.Random) -> Iterator[tuple[int, bytes]]:
    """Two presses of the home's emergency button (life-safety alerts to answer)."""
    button = next((d["id"] for d in spec["devices"] if d["kind"] == "button"), None)
    if button is None:
        return
    for seq, day in enumerate(sorted(rng.sample(range(1, days), 2)), start=1):
        ts = start_ms + day * DAY_MS + rng.randrange(8, 20) * 3_600_000
        payload = encode_event(Envelope(boot=900, seq=seq, ts=ts, tq=2))
        topic = f"{PREFIX}/{spec['site']}/{button}/event/button"
        yield ts + 40, orjson.dumps({"rx_ms": ts + 40, "topic": topic,
                                     "payload": orjson.loads(payload)})


def messages(start_ms: int, days: int) -> tuple[list[dict[str, Any]], list[bytes]]:
    """The homes (replay's homes.json entries) and their messages in receive order."""
    specs, streams = [], []
    rng = random.Random(SEED)
    for index, force in HOMES:
        h = generate_home(SEED, index, days, start_ms, force)
        specs.append(h.spec)
        streams.append(sorted([*h.lines, *_button_presses(h.spec, start_ms, days, rng)]))
    return specs, [line for _, line in heapq.merge(*streams, key=lambda x: x[0])]


def ingest_lines(homes: list[dict[str, Any]], lines: list[bytes]
                 ) -> tuple[list[bytes], list[bytes]]:
    """Raw points and 1-minute rollup points, as ingest makes them."""
    topics = Topics(PREFIX)
    where = {d["id"]: (h["site"], h["home"]) for h in homes for d in h["devices"]}
    rollup = Rollup(grace_s=30)
    raw: list[bytes] = []
    rolled: list[bytes] = []
    for line in lines:
        obj = orjson.loads(line)
        rx = int(obj["rx_ms"])
        payload = obj["payload"]
        body = payload.encode() if isinstance(payload, str) else orjson.dumps(payload)
        m = decode_message(topics, obj["topic"], body)
        if isinstance(m, Rejection):
            continue  # the service dead-letters these; they are no points
        site_home = where.get(m.topic.device)
        home = site_home[1] if site_home else None
        env = getattr(m, "env", None)
        base = rx
        if isinstance(env, Envelope) and device_time_plausible(env, rx):
            base = env.ts
        raw.extend(p.line for p in to_points(m, home, rx, base_ms=base))
        if home is not None and site_home and isinstance(m, Telemetry):
            for s in m.samples:
                if s.readings:
                    rollup.add(site_home[0], home, point_ts(m.env, s.ts, base), s.readings)
        rolled.extend(rollup.due(rx))
    rolled.extend(rollup.flush_all())
    return raw, rolled


class _People:
    """Care workers and a supervisor who answer alerts, with human delays (seeded)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def ack_after_s(self, priority: str) -> float:
        if priority == Priority.HIGH.value:
            # most presses answered within a minute, a few slower (escalated)
            return self.rng.choice((8, 15, 22, 30, 41, 55, 75, 200)) + self.rng.random()
        return self.rng.uniform(5 * 60, 90 * 60)

    def outcome(self, rule: Rule) -> Outcome:
        if RULE_CLASS[rule] is AlertClass.LIFE_SAFETY:
            return self.rng.choice((Outcome.FALSE_ALARM, Outcome.VISITED_OK,
                                    Outcome.NEEDS_CARE))
        return self.rng.choice((Outcome.VISITED_OK, Outcome.FALSE_ALARM))


def _dt(ms: float) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def alert_lines(homes: list[dict[str, Any]], lines: list[bytes], db_path: Path,
                now_ms: int) -> tuple[list[bytes], int]:
    """Replay the rules, run the lifecycle with simulated people, export the journal."""
    said: list[dict[str, Any]] = []
    replay({"homes": homes}, lines, said.append)
    url = f"sqlite:///{db_path}"
    migrate(url)
    sessions = session_factory(url)
    table = EscalationTable()
    people = _People(random.Random(SEED))
    with sessions.begin() as s:
        for site in sorted({h["site"] for h in homes}):
            registry.add_site(s, site, site)
        for h in homes:
            registry.add_home(s, h["home"], h["site"])
        # two care workers share the homes (the Centre dashboard's load per worker)
        workers = [User(username=name, display_name=name, role=UserRole.CARE_WORKER,
                        site_id=homes[0]["site"], active=True)
                   for name in ("worker", "worker2")]
        s.add_all(workers)
        s.flush()
        by_id = {w.id: w for w in workers}
        who = random.Random(SEED + 1)  # its own draws: the people's delays stay as they were
        # (time, order, what, args): people's actions interleaved with the rules' output
        todo: list[tuple[float, int, str, tuple[Any, ...]]] = []
        n = 0
        for a in said:
            if a["action"] in ("raise", "update"):
                todo.append((a["t_ms"], n, "raise", (a,)))
            elif a["action"] == "resolve":
                todo.append((a["t_ms"], n, "clear", (a,)))
            n += 1
        heapq.heapify(todo)
        raised = 0
        while todo:
            t, _, what, args = heapq.heappop(todo)
            if t > now_ms:
                continue
            if what == "raise":
                a = args[0]
                rule, prio = Rule(a["rule"]), Priority(a["priority"])
                r = lc.raise_alert(s, site=a["site"], home=a.get("home"), rule=rule,
                                   priority=prio, at=_dt(t), table=table,
                                   device=a.get("device"))
                if r.created:
                    raised += 1
                    ack = t + people.ack_after_s(prio.value) * 1000
                    for step_s in (60, 180):
                        if t + step_s * 1000 < ack:
                            n += 1
                            heapq.heappush(todo, (t + step_s * 1000, n, "escalate",
                                                  (r.alert_id,)))
                    n += 1
                    heapq.heappush(todo, (ack, n, "ack", (r.alert_id,)))
                    if RULE_CLASS[rule] is AlertClass.LIFE_SAFETY:
                        # only a person closes these; the others close when their
                        # condition clears (the rules' own "resolve")
                        n += 1
                        heapq.heappush(todo, (ack + people.rng.uniform(10, 240) * 60_000,
                                              n, "resolve", (r.alert_id, rule)))
            elif what == "clear":
                a = args[0]
                lc.auto_resolve(s, a["site"], a.get("home"), Rule(a["rule"]), _dt(t),
                                reason="condition cleared")
            elif what == "escalate":
                if args[0] in lc.due_escalations(s, _dt(t)):
                    lc.escalate(s, args[0], _dt(t), table)
            else:
                alert = lc.get_alert(s, args[0])
                if alert.status == "resolved":
                    continue
                if what == "ack":
                    lc.acknowledge(s, args[0], who.choice(workers), _dt(t))
                else:  # closed by whoever took it
                    taker = by_id.get(alert.acknowledged_by or -1, workers[0])
                    lc.resolve(s, args[0], people.outcome(args[1]), taker, _dt(t))
    # The alerts service's exporter (dolbom.alerts.export), over this journal.
    out: list[bytes] = []
    with sessions() as s:
        cursor = 0
        while True:
            batch, cursor = export.transition_lines(s, cursor)
            if not batch:
                break
            out += batch
        out += export.response_lines(s, _dt(now_ms))
    return out, raised


def mode_lines(homes: list[dict[str, Any]], start_ms: int, end_ms: int) -> list[bytes]:
    """The ``home_mode`` points the alerts service writes: every home's mode when it
    starts (here: at the start) and every ``export.HOME_MODE_EVERY_S``, and a home's new mode
    when the registry changes it (replay's ``modes``)."""
    every_ms = int(export.HOME_MODE_EVERY_S * 1000)
    changes = sorted({int(m["t_ms"]) for h in homes for m in h.get("modes") or ()
                      if start_ms <= int(m["t_ms"]) < end_ms})
    times = sorted({*range(start_ms, end_ms, every_ms), *changes})
    seen: dict[str, HomeConfig] = {}
    out: list[bytes] = []
    for t in times:
        homes_now = {}
        for h in homes:
            mode = "normal"
            for m in sorted(h.get("modes") or (), key=lambda m: int(m["t_ms"])):
                if int(m["t_ms"]) <= t:
                    mode = str(m["mode"])
            homes_now[h["home"]] = HomeConfig(h["site"], h["home"], mode, Thresholds(), ())
        if (t - start_ms) % every_ms == 0:
            seen = {}
        out += export.home_mode_lines(export.mode_changes(seen, homes_now), t)
        seen = homes_now
    return out


INGEST_INSTANCE = "dolbom-ingest"
MINUTE_MS = 60_000
# An InfluxDB outage of 40 minutes three days before the end: ingest spools, then drains.
OUTAGE_AT_MS, OUTAGE_MS = 10 * 3_600_000, 40 * MINUTE_MS
FLUSHES_PER_MINUTE = 6


def _faults(homes: list[dict[str, Any]], start_ms: int, days: int,
            rng: random.Random) -> Iterator[tuple[int, str, bytes]]:
    """Messages ingest dead-letters, a few a day: a truncated payload, a reading without
    its sequence number, a device that is not in the registry."""
    devices = [(h["site"], d["id"]) for h in homes for d in h["devices"]]
    for day in range(days):
        for _ in range(rng.randrange(1, 5)):
            t = start_ms + day * DAY_MS + rng.randrange(DAY_MS)
            site, dev = rng.choice(devices)
            fault = rng.choice(("truncated", "no_seq", "unknown"))
            if fault == "truncated":
                body = b'{"v":1,"boot":3,"seq":'
            else:
                env: dict[str, Any] = {"v": 1, "boot": 3, "seq": 7, "ts": t, "tq": 2,
                                       "readings": {"temperature_c": 21.0}}
                if fault == "no_seq":
                    del env["seq"]
                else:
                    dev = "esp32-ffff01"
                body = orjson.dumps(env)
            yield t, f"{PREFIX}/{site}/{dev}/telemetry", body


def ingest_stats_lines(homes: list[dict[str, Any]], raw: list[bytes], start_ms: int,
                       end_ms: int) -> list[bytes]:
    """The ``ingest_stats`` points ingest's self-stats writer makes (dolbom.ingest.
    selfstats), minute by minute, from ingest's own metrics driven as the service drives
    them: the points stored each minute, dead letters of a few faulty messages (decoded
    by ingest's decoder), flush times drawn at random (seeded), and an InfluxDB outage
    during which batches go to the spool and are replayed afterwards."""
    rng = random.Random(SEED + 2)
    topics = Topics(PREFIX)
    known = {d["id"] for h in homes for d in h["devices"]}
    dead: dict[int, list[str]] = {}
    for t, topic, body in _faults(homes, start_ms, (end_ms - start_ms) // DAY_MS, rng):
        m = decode_message(topics, topic, body)
        if isinstance(m, Rejection):
            dead.setdefault(t // MINUTE_MS, []).append(m.reason.value)
        elif m.topic.device not in known:
            dead.setdefault(t // MINUTE_MS, []).append(Reason.UNKNOWN_DEVICE.value)
    stored = Counter(int(ln.rsplit(b" ", 1)[1]) // MINUTE_MS for ln in raw)
    down_from = (end_ms - 3 * DAY_MS + OUTAGE_AT_MS) // MINUTE_MS
    down_to = down_from + OUTAGE_MS // MINUTE_MS
    metrics = IngestMetrics()
    metrics.mqtt_up.set(1)
    spool_files, spool_points = 0, 0
    prev: Totals | None = None
    out: list[bytes] = []
    for minute in range(start_ms // MINUTE_MS, end_ms // MINUTE_MS):
        n = stored.get(minute, 0)
        if down_from <= minute < down_to:  # each flush: retried twice, then spooled
            metrics.influx_up.set(0)
            metrics.write_errors.inc(3 * FLUSHES_PER_MINUTE)
            metrics.spooled.inc(n)
            spool_files += FLUSHES_PER_MINUTE
            spool_points += n
            took = [rng.uniform(1.5, 3.0) for _ in range(FLUSHES_PER_MINUTE)]
        else:
            metrics.influx_up.set(1)
            metrics.points.inc(n)
            took = [rng.lognormvariate(-4.2, 0.6) for _ in range(FLUSHES_PER_MINUTE)]
            if spool_files:  # the replay task drains the spool, oldest first
                done = min(spool_files, 4 * FLUSHES_PER_MINUTE * 5)
                moved = spool_points * done // spool_files
                metrics.points.inc(moved)
                metrics.replayed.inc(moved)
                spool_files, spool_points = spool_files - done, spool_points - moved
        metrics.spool_files.set(spool_files)
        for reason in dead.get(minute, ()):
            metrics.dead_letters.labels(reason).inc()
        for seconds in took:
            metrics.flush_seconds.observe(seconds)
        cur = read_totals(metrics.registry)
        out += stats_lines(INGEST_INSTANCE, prev, cur, (minute + 1) * MINUTE_MS)
        prev = cur
    return out


def _write(url: str, user: tuple[str, str], db: str, lines: list[bytes],
           rp: str | None = None, chunk: int = 20_000) -> None:
    client = InfluxHTTP(url, *user)
    for i in range(0, len(lines), chunk):
        client.write(lines[i:i + chunk], db, rp, timeout=60)


def load(url: str, admin: tuple[str, str], ingest: tuple[str, str], database: str,
         work_dir: Path, end_ms: int, days: int = 8,
         sites: frozenset[str] | None = None) -> CareHome:
    """Simulate ``days`` ending at ``end_ms`` (rounded down to a day) into ``database``.

    ``sites``: write only these sites' points (a centre's own database, docs: privacy).
    """
    end_ms = end_ms // DAY_MS * DAY_MS
    start_ms = end_ms - days * DAY_MS
    homes, lines = messages(start_ms, days)
    raw, rolled = ingest_lines(homes, lines)
    alerts, raised = alert_lines(homes, lines, work_dir / "registry.db", end_ms)
    alerts += mode_lines(homes, start_ms, end_ms)
    # a cell's ingest serves its centre's sites only: its stats carry no site
    stats = ingest_stats_lines(homes, raw, start_ms, end_ms)
    if sites is not None:
        keep = tuple(f",site={s},".encode() for s in sites)
        keep_end = tuple(f",site={s} ".encode() for s in sites)
        raw, rolled, alerts = ([ln for ln in part if any(k in ln for k in keep + keep_end)]
                               for part in (raw, rolled, alerts))
        homes = [h for h in homes if h["site"] in sites]
    _write(url, ingest, database, raw)
    _write(url, ingest, database, rolled, rp="rollup")
    _write(url, ingest, database, alerts)
    _write(url, ingest, database, stats)
    InfluxHTTP(url, *admin).query(rollup_1h_select(
        f'"{database}"', f"WHERE time >= {start_ms}ms AND time < {end_ms}ms"), database,
        method="POST")
    return CareHome(start_ms, end_ms, homes,
                    {"raw": len(raw), "rollup_1m": len(rolled), "alert": len(alerts),
                     "ingest_stats": len(stats)},
                    raised)
