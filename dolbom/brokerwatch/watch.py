"""``dolbom broker watch-denials``: the broker's ACL denials become metrics and, for a
device that keeps trying, one technical ``acl_denied`` alert (docs/broker.md).

The shell around ``dolbom.registry.denials``: it follows the broker's log
(``LogTail``), counts every denial in ``dolbom_broker_acl_denied_total{reason}``
(reasons are the few things the broker refuses, never a client id: a fleet of
300,000 devices would be 300,000 series), and when ``DenialWindows`` reports a
client, looks it up in the registry and raises or repeats its alert with
``lifecycle.raise_alert`` (site and home from the registry, the device as subject,
priority low: operators are told once, repeats count on the open alert).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel, Field, model_validator
from sqlalchemy.orm import Session, sessionmaker

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.model import EscalationTable, Priority, Rule
from dolbom.files import write_atomic
from dolbom.metrics_http import serve_metrics
from dolbom.registry.denials import (
    ClientNames,
    Connected,
    Denial,
    DenialWindows,
    Malformed,
    Report,
    WindowPolicy,
    parse_line,
)
from dolbom.registry.logtail import LogTail, Position
from dolbom.registry.models import Device
from dolbom.settings import BaseServiceSettings

log = logging.getLogger(__name__)


class DenialOptions(BaseModel):
    # The broker's log with its denials (dolbom.stack: <broker dir>/broker.log when the
    # broker logs denials); ``--log`` overrides it.
    log_file: Path | None = None
    # A device denied this many times within window_s raises one acl_denied alert;
    # while it goes on, the open alert is updated at most every repeat_s.
    threshold: int = Field(5, ge=1, le=1000)
    window_s: float = Field(600.0, gt=0)
    repeat_s: float = Field(60.0, gt=0)
    # How often the log is read; at most this many clients are remembered (windows
    # and the user names they connected as; the least recent are forgotten first).
    poll_s: float = Field(1.0, gt=0, le=60)
    max_clients: int = Field(10_000, ge=1)
    # Where the watcher keeps its place in the log across restarts (unset: none; it
    # starts at the end of the log on every start).
    state_file: Path | None = None
    # Prometheus /metrics and /health (port 0: none).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(9111, ge=0, le=65535)

    @model_validator(mode="after")
    def _window(self) -> DenialOptions:
        if self.repeat_s > self.window_s:
            raise ValueError("denials.repeat_s must not be longer than denials.window_s")
        return self

    @property
    def policy(self) -> WindowPolicy:
        return WindowPolicy(self.threshold, self.window_s, self.repeat_s, self.max_clients)


class DenialWatchSettings(BaseServiceSettings):
    denials: DenialOptions = DenialOptions()


class DenialMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.denied = Counter("dolbom_broker_acl_denied_total",
                              "Requests the broker's ACL refused, by what was refused",
                              ["reason"], registry=r)
        self.malformed = Counter("dolbom_broker_log_malformed_total",
                                 "Broker log lines that looked like a denial or a connection "
                                 "but could not be read", registry=r)
        self.reports = Counter("dolbom_broker_acl_reports_total",
                               "Clients that kept being denied, by what was done: raised or "
                               "repeated an alert, or not_a_device (no alert: not in the "
                               "registry)", ["action"], registry=r)
        self.rotations = Counter("dolbom_broker_log_rotations_total",
                                 "Times the broker log was rotated or truncated", registry=r)
        self.clients = Gauge("dolbom_broker_acl_clients_tracked",
                             "Clients with denials in their window", registry=r)
        for reason in ("publish",):
            self.denied.labels(reason)
        for action in ("raised", "repeated", "not_a_device"):
            self.reports.labels(action)


def _load_position(path: Path | None) -> Position | None:
    if path is None:
        return None
    try:
        d = json.loads(path.read_text())
        return Position(int(d["dev"]), int(d["ino"]), int(d["offset"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as e:
        log.warning("ignoring the watcher state %s (%s): starting at the end of the log",
                    path, e)
        return None


class DenialWatch:
    """Reads the broker log and tells operators about devices that keep being denied."""

    def __init__(self, options: DenialOptions, log_file: Path, sessions: sessionmaker[Session],
                 *, metrics: DenialMetrics | None = None,
                 clock: Callable[[], float] = time.time,
                 table: EscalationTable | None = None) -> None:
        self.options = options
        self.sessions = sessions
        self.metrics = metrics or DenialMetrics()
        self.clock = clock
        self.table = table or EscalationTable()
        self.tail = LogTail(log_file, start=_load_position(options.state_file))
        self.names = ClientNames(options.max_clients)
        self.windows = DenialWindows(options.policy)
        self._rotations = 0
        self._saved: Position | None = None
        self.stopping = asyncio.Event()

    # -- one pass ----------------------------------------------------------------------
    def step(self, budget: int = 64) -> int:
        """Read what the log has (at most ``budget`` reads), act on it; lines read."""
        n = 0
        for _ in range(budget):
            lines = self.tail.read_lines()
            if not lines:
                break
            n += len(lines)
            for raw in lines:
                self._line(raw)
        rotations = self.tail.rotations + self.tail.truncations
        if rotations > self._rotations:
            self.metrics.rotations.inc(rotations - self._rotations)
            self._rotations = rotations
        self.metrics.clients.set(len(self.windows))
        return n

    def _line(self, raw: bytes) -> None:
        # Cheap test first: at 10,000 messages a second the debug log has ~20,000 lines
        # a second, and nearly none is a denial or a connection.
        if b"Denied " not in raw and b"New client" not in raw:
            return
        parsed = parse_line(raw.decode("utf-8", "replace"))
        if isinstance(parsed, Denial):
            self._denied(parsed)
        elif isinstance(parsed, Connected):
            self.names.connected(parsed.client_id, parsed.username)
        elif isinstance(parsed, Malformed):
            self.metrics.malformed.inc()
            log.debug("unreadable broker log line (%s)", parsed.reason)

    def _denied(self, d: Denial) -> None:
        self.metrics.denied.labels(d.action).inc()
        who, by_username, topic = self.names.blame(d)
        report = self.windows.observe(who, topic, d.at if d.at is not None else self.clock())
        if report is None:
            return
        try:
            action = self._tell(report, d, by_username)
        except Exception:
            # The database is away: the next report (repeat_s later) tries again.
            log.exception("could not store the acl_denied alert of %s", who)
            return
        self.metrics.reports.labels(action).inc()

    def _tell(self, r: Report, d: Denial, by_username: bool) -> str:
        """Raise (or repeat) the device's alert; the action taken."""
        at = datetime.fromtimestamp(self.clock(), UTC)
        with self.sessions.begin() as s:
            dev = s.get(Device, r.who)
            if dev is None:
                log.warning("client %r (%s) keeps being denied (%d times since %s) but is "
                            "not a registered device: no alert", r.who,
                            "user name" if by_username else "client id", r.total,
                            datetime.fromtimestamp(r.since, UTC).isoformat(timespec="seconds"))
                return "not_a_device"
            detail: dict[str, Any] = {
                "device": dev.id, "action": d.action, "topic": r.topics[-1],
                "topics": list(r.topics), "denied": r.total, "in_window": r.in_window,
                "window_s": self.options.window_s,
                "since": datetime.fromtimestamp(r.since, UTC).isoformat(timespec="seconds"),
                "identified_by": "username" if by_username else "client_id",
            }
            if d.client_id != dev.id:
                detail["client_id"] = d.client_id[:64]
            res = lc.raise_alert(s, site=dev.site_id, home=dev.home_id, rule=Rule.ACL_DENIED,
                                 priority=Priority.LOW, at=at, table=self.table,
                                 device=dev.id, detail=detail, subject=dev.id)
        if res.created:
            log.warning("device %s denied %d times (%s): acl_denied alert %d raised", dev.id,
                        r.total, r.topics[-1], res.alert_id)
        return "raised" if res.created else "repeated"

    def save_position(self) -> None:
        path, pos = self.options.state_file, self.tail.position
        if path is None or pos is None or pos == self._saved:
            return  # nothing new: no write (and fsync) every poll
        body = json.dumps({"dev": pos.dev, "ino": pos.ino, "offset": pos.offset})
        try:
            write_atomic(path, body.encode())
        except OSError as e:
            log.warning("cannot save the watcher state to %s: %s", path, e)
            return
        self._saved = pos

    # -- the loop ----------------------------------------------------------------------
    def health(self) -> tuple[bool, dict[str, Any]]:
        readable = os.access(self.tail.path, os.R_OK)
        return readable, {"log": str(self.tail.path), "log_readable": readable,
                          "clients": len(self.windows)}

    async def run(self) -> None:
        """Follow the log until ``stopping`` is set; the metrics endpoint beside it."""
        o = self.options
        runner = await serve_metrics(o.metrics_host, o.metrics_port, self.metrics.registry,
                                     self.health)
        try:
            while not self.stopping.is_set():
                # Database writes happen only on reports (bounded by repeat_s per
                # client), so one thread for the pass keeps the endpoint answering.
                await asyncio.to_thread(self.step)
                self.save_position()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stopping.wait(), o.poll_s)
        finally:
            self.save_position()
            self.tail.close()
            if runner is not None:
                await runner.cleanup()
