"""A dead share worker's queue in the real broker raises one broker_backlog alert, and its
return clears it (docs/scale.md).

Real Mosquitto 2.0 (dolbom.stack's config, ``sys_interval`` 1 s here instead of its
default 10 s so the test takes seconds), its users and ACL rendered from the registry:
two persistent ``$share`` sessions of the ingest account take a device's QoS 1 stream,
one is dropped without a DISCONNECT, its share piles up in the broker, and the watcher,
as the operator account, sees the store's count grow. Its clock moves 30 s at each
figure the broker publishes; every wait is bounded."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from dolbom.brokerwatch.backlog import SYS_STORED, Report
from dolbom.brokerwatch.backlog_watch import BacklogMetrics, BacklogOptions, BacklogWatch
from dolbom.mqtt import Client, Endpoint, Received
from dolbom.protocol import Topics
from dolbom.registry import service as svc
from dolbom.registry.broker import sync_broker
from dolbom.registry.models import Alert
from dolbom.stack.mosquitto import Mosquitto
from dolbom.stack.proc import free_port
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration
T = Topics()
SHARE = f"$share/ingest/{T.prefix}/+/+/telemetry"
BATCH = 60  # messages a round: half of them queue for the dead worker


@pytest.fixture()
def broker(runtime_dir: Path, sqlite_factory: sessionmaker[Session]
           ) -> Iterator[tuple[Mosquitto, dict[str, str]]]:
    """The broker, its accounts from the registry; yields it and {user: password}."""
    pw = {"svc-ingest": "ingest-pw", "svc-operator": "operator-pw"}
    with sqlite_factory.begin() as s:
        for name, role in (("svc-ingest", "ingest"), ("svc-operator", "operator")):
            svc.ensure_service_account(s, name, role, pw[name])
        svc.add_site(s, "s1", "Site 1")
        svc.add_home(s, "h1", "s1")
        _, pw["m-1"] = svc.add_device(s, "m-1", "s1", "h1", "multisensor")
        svc.add_user(s, "ops", "admin")
    m = Mosquitto(Path(tempfile.mkdtemp(prefix="mosquitto-", dir=runtime_dir)))
    m.prepare()
    conf = m.dir / "mosquitto.conf"
    conf.write_text(conf.read_text() + "sys_interval 1\n")
    with sqlite_factory() as s:
        sync_broker(s, m.files, T, reload=False)
    m.start()
    yield m, pw
    m.stop()


class Worker:
    """A persistent ``$share`` session that acks what it takes, as ingest does."""

    def __init__(self, port: int, i: int, pw: str) -> None:
        self.taken = 0
        self.client = Client("127.0.0.1", port, f"w{i}", username="svc-ingest", password=pw,
                             clean_session=False, on_message=self._take)

    def _take(self, msg: Received) -> None:
        self.taken += 1
        self.client.ack(msg)

    async def start(self) -> Worker:
        await self.client.connect(timeout=5)
        await self.client.subscribe([(SHARE, 1)])
        return self


def _open(factory: sessionmaker[Session]) -> list[Alert]:
    with factory() as s:
        return list(s.scalars(select(Alert).where(Alert.rule == "broker_backlog",
                                                  Alert.open_key.is_not(None))))


async def test_a_dead_share_workers_queue_raises_one_alert_and_its_return_clears_it(
        broker: tuple[Mosquitto, dict[str, str]],
        sqlite_factory: sessionmaker[Session]) -> None:
    m, pw = broker
    now = [1_800_000_000.0]
    options = BacklogOptions(threshold=100, sustain_s=60, min_growth=50, clear_below=20,
                             repeat_s=3_600, metrics_port=0)
    watch = BacklogWatch(options, Endpoint("127.0.0.1", m.port, "svc-operator",
                                           pw["svc-operator"]),
                         sqlite_factory, metrics=BacklogMetrics(CollectorRegistry()),
                         clock=lambda: now[0])
    task = asyncio.create_task(watch.run())
    workers = [await Worker(m.port, i, pw["svc-ingest"]).start() for i in (0, 1)]
    device = Client("127.0.0.1", m.port, "m-1", username="m-1", password=pw["m-1"])
    await device.connect(timeout=5)
    seq = 0

    async def publish(n: int) -> None:
        nonlocal seq
        for _ in range(n):
            seq += 1
            await device.publish(T.telemetry("s1", "m-1"), b'{"seq":%d}' % seq, qos=1)

    counts = [0]  # store counts the watcher took
    take = watch.take

    def counted(topic: str, payload: bytes) -> Report | None:
        counts[0] += topic == SYS_STORED
        return take(topic, payload)

    watch.take = counted  # type: ignore[method-assign]

    async def next_figure() -> int:
        """Wait for the broker's next store count (each sample at the clock's time), then
        move the clock 30 s."""
        before = counts[0]
        await eventually(lambda: counts[0] > before, 10, "a new store count")
        now[0] += 30
        held = watch.figures.held
        assert held is not None
        return held

    try:
        await eventually(lambda: watch.figures.held is not None, 10, "the $SYS figures")
        await publish(BATCH)
        await eventually(lambda: sum(w.taken for w in workers) == BATCH, 10, "both take")
        assert all(w.taken > 0 for w in workers)  # they share the stream
        assert watch.figures.held is not None and watch.figures.held < 20  # nothing held
        assert _open(sqlite_factory) == []

        workers[1].client.abort()  # dies: no DISCONNECT, its session stays
        helds = []
        for _ in range(12):  # bounded: raised after ~6 rounds
            await publish(BATCH)
            helds.append(await next_figure())
            if _open(sqlite_factory):
                break
        else:
            pytest.fail(f"no alert; the broker held {helds}")
        assert helds == sorted(helds) and helds[-1] >= 100, helds  # it only grew
        # exactly the dead worker's share is held: half of what it missed, within a round
        assert abs(helds[-1] - len(helds) * BATCH / 2) <= BATCH, helds
        [alert] = _open(sqlite_factory)
        assert (alert.site_id, alert.rule, alert.priority) == ("s1", "broker_backlog", "low")
        assert alert.detail["cell"] == "default" and alert.detail["held"] >= 100
        assert alert.detail["disconnected"] >= 1
        reg = watch.metrics.registry
        assert reg.get_sample_value("dolbom_broker_backlog_reports_total",
                                    {"action": "raised"}) == 1
        assert reg.get_sample_value("dolbom_broker_sys_up") == 1

        # still dead, still growing: no second alert
        for _ in range(3):
            await publish(BATCH)
            await next_figure()
        assert [a.id for a in _open(sqlite_factory)] == [alert.id]

        # it comes back (same client id): the broker gives it its queue, which drains
        before_death = workers[1].taken
        workers[1] = await Worker(m.port, 1, pw["svc-ingest"]).start()
        await eventually(lambda: (watch.figures.held or 0) < 20, 15, "the queue drained",
                         lambda: watch.figures.held)
        await eventually(lambda: not _open(sqlite_factory), 10, "the alert cleared")
        with sqlite_factory() as s:
            a = s.get(Alert, alert.id)
            assert a is not None and (a.status, a.outcome) == ("resolved", "auto_cleared")
        # every message taken (one in flight at the death may come twice)
        assert sum(w.taken for w in workers) + before_death >= seq
    finally:
        await device.disconnect()
        for w in workers:
            if w.client.connected:
                await w.client.disconnect()
        watch.stopping.set()
        await asyncio.wait_for(task, 15)


async def test_the_command_watches_the_broker_until_sigterm(
        broker: tuple[Mosquitto, dict[str, str]], sqlite_url: str) -> None:
    """``dolbom broker watch-backlog`` as deployed: the operator account, /health and the
    broker's figures on /metrics, a clean exit on SIGTERM."""
    m, pw = broker
    port = free_port()
    env = {**os.environ, "DOLBOM_DATABASE_URL": sqlite_url,
           "DOLBOM_MQTT__PORT": str(m.port), "DOLBOM_MQTT__USERNAME": "svc-operator",
           "DOLBOM_MQTT__PASSWORD": pw["svc-operator"], "DOLBOM_BACKLOG__CELL": "a",
           "DOLBOM_BACKLOG__METRICS_PORT": str(port)}
    p = subprocess.Popen([sys.executable, "-m", "dolbom.cli", "broker", "watch-backlog"],
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        def fetch(path: str) -> bytes:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
                return bytes(r.read())

        def health() -> dict[str, object]:
            try:
                return dict(json.loads(fetch("/health")))
            except OSError:  # not up yet, or 503: not connected
                return {}

        # held is known once the broker's store and retained counts both arrived
        await eventually(lambda: health().get("held") is not None, 20,
                         "the watcher connected with the broker's figures", p.poll)
        h = health()
        assert h["connected"] is True and h["cell"] == "a" and h["alert_open"] is False
        text = fetch("/metrics").decode()
        assert "dolbom_broker_sys_up 1.0" in text
        assert "dolbom_broker_retained_messages 0.0" not in text
    finally:
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=20)
    assert p.returncode == 0, err
    assert b"watching cell a's broker 127.0.0.1:%d" % m.port in out
