"""Real alert-service processes for the life-safety tests: their environment, start,
/proc state, /health, button presses until acked, and the checks on what was told.
The escalation table is shortened (re-notify at 3 s, escalate at 6 s) so that the real
clock can be used; every wait is bounded."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import select

from dolbom.mqtt import Client
from dolbom.protocol import Envelope, encode_event
from dolbom.registry.db import session_factory
from dolbom.registry.models import AlarmJournal, Alert, AlertEvent, Outbox
from dolbom.stack.proc import free_port
from dolbom.stack.stack import Stack
from tests.integration.alerting import SECRET, Receiver, care_home
from tests.integration.conftest import TOPICS, device_client, unique_now_ms

RENOTIFY_S, ESCALATE_S = 3.0, 6.0
# per unacknowledged button alert: worker + responder told, told again, then the supervisor
NOTICES_PER_ALARM = 5


def service_env(stack: Stack, lock: Path, metrics_port: int) -> dict[str, str]:
    mqtt, influx = stack.mqtt_settings("svc-alerts"), stack.influx_settings()
    assert mqtt.password and influx.password
    return {**os.environ,
            "DOLBOM_DATABASE_URL": stack.database_url,
            "DOLBOM_MQTT__PORT": str(mqtt.port), "DOLBOM_MQTT__USERNAME": "svc-alerts",
            "DOLBOM_MQTT__PASSWORD": mqtt.password.get_secret_value(),
            "DOLBOM_INFLUX__URL": influx.url, "DOLBOM_INFLUX__USERNAME": "ingest",
            "DOLBOM_INFLUX__PASSWORD": influx.password.get_secret_value(),
            "DOLBOM_NOTIFY__WEBHOOK_SECRET": SECRET, "DOLBOM_NOTIFY__TIMEOUT_S": "5",
            "DOLBOM_ALERTS__ALARM_PROCESS": "spawn",
            "DOLBOM_ALERTS__ALARM_LOCK_FILE": str(lock),
            "DOLBOM_ALERTS__OUTBOX_POLL_S": "0.1", "DOLBOM_ALERTS__TICK_S": "0.2",
            "DOLBOM_ALERTS__HIGH_RENOTIFY_S": str(RENOTIFY_S),
            "DOLBOM_ALERTS__HIGH_ESCALATE_S": str(ESCALATE_S),
            "DOLBOM_ALERTS__METRICS_PORT": str(metrics_port),
            "DOLBOM_ALERTS__ALARM_METRICS_PORT": str(free_port())}


def rules_process(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "dolbom.cli", "alerts", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


def proc_state(pid: int) -> str | None:
    """The process's state letter (R, S, T stopped, Z zombie), None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return None


def alive(pid: int) -> bool:
    return proc_state(pid) not in (None, "Z")


def health(port: int) -> dict[str, Any] | None:
    """The rules process's /health detail, None while it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
            detail: dict[str, Any] = orjson.loads(r.read())
            return detail
    except OSError as e:  # 503 (not everything up yet) is an HTTPError, an OSError
        body = getattr(e, "read", None)
        return orjson.loads(body()) if callable(body) else None


async def press_acked(dev: Client, site: str, dev_id: str, seq: int, tries: int = 40) -> None:
    """Press until the ack for ``seq`` comes back (bounded: ``tries`` × 0.5 s)."""
    for _ in range(tries):
        await dev.publish(TOPICS.event(site, dev_id, "button"),
                          encode_event(Envelope(1, seq, unique_now_ms(), 2)), qos=1)
        try:
            async with asyncio.timeout(0.5):
                async for ack in dev.messages():
                    if orjson.loads(ack.payload) == {"boot": 1, "seq": seq}:
                        return
        except TimeoutError:
            continue
    raise AssertionError(f"press {seq} of {dev_id} never acked")


@asynccontextmanager
async def button_clients(stack: Stack, homes: list[tuple[str, str, str, str]]
                         ) -> AsyncIterator[list[Client]]:
    """Each home's button device (``button_homes``) connected and subscribed to its ack."""
    async with contextlib.AsyncExitStack() as clients:
        devs = [await clients.enter_async_context(device_client(stack, dev, pw))
                for _site, _home, dev, pw in homes]
        for (site, _home, dev, _pw), c in zip(homes, devs, strict=True):
            await c.subscribe([(TOPICS.ack(site, dev), 1)])
        yield devs


def button_homes(stack: Stack, tag: str, rec: Receiver, n: int) -> list[tuple[str, str, str, str]]:
    """``n`` homes (each on its own site, with its people); (site, home, device, password)."""
    out = []
    for i in range(1, n + 1):
        site, home, dev = f"{tag}{i}", f"h{tag}{i}", f"btn-{tag}{i}"
        pw = care_home(stack, site, home, {dev: "button"}, rec.url)
        out.append((site, home, dev, pw[dev]))
    return out


def check_escalations(stack: Stack, homes: list[tuple[str, str, str, str]]) -> None:
    """Each home's button alert: journalled, re-notified once at RENOTIFY_S and escalated
    once at ESCALATE_S (not earlier), with one outbox row per notice and person."""
    with session_factory(stack.database_url)() as s:
        for _site, home, dev, _pw in homes:
            (a,) = s.scalars(select(Alert).where(Alert.home_id == home)).all()
            assert s.get(AlarmJournal, (dev, 1, 1)) is not None
            kinds = Counter(s.scalars(select(AlertEvent.kind)
                                      .where(AlertEvent.alert_id == a.id)))
            assert (kinds["renotified"], kinds["escalated"]) == (1, 1), (home, kinds)
            assert (a.escalation_step, a.tier) == (2, 2)
            raised = a.raised_at
            for o in s.scalars(select(Outbox).where(Outbox.alert_id == a.id)):
                if o.notice == "renotify":
                    assert o.created_at - raised >= timedelta(seconds=RENOTIFY_S)
                elif o.notice == "escalated":
                    assert o.created_at - raised >= timedelta(seconds=ESCALATE_S)


def told_once_each(rec: Receiver) -> None:
    """No notice reached a person twice (delivery id and recipient)."""
    twice = [k for k, n in Counter(zip(rec.deliveries, rec.who, strict=True)).items() if n > 1]
    assert twice == [], twice


def stop_all(proc: subprocess.Popen[bytes], *pids: int) -> None:
    """Clean-up of the processes this test started (the rules process, and the alarm
    process it spawned): SIGCONT first in case it was left stopped, then SIGKILL."""
    for pid in (proc.pid, *pids):
        if alive(pid):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait(10)
