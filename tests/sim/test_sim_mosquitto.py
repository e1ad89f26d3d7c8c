"""The simulator against a real Mosquitto: own credentials, contract, acks, Wills, reconnects."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from dolbom.mqtt import Client, MqttError, Received
from dolbom.protocol import Event, Message, Status, Telemetry, Topics, decode, encode_ack
from dolbom.settings import MqttSettings
from dolbom.sim import control
from dolbom.sim.plan import Power, SimPlan
from dolbom.sim.runner import run_simulator
from dolbom.sim.settings import SimOptions, SimSettings
from dolbom.sim.stats import SimStats
from dolbom.stack.mosquitto import Mosquitto

pytestmark = pytest.mark.integration
TOPICS = Topics()
SVC = "svc-sim-test"


@dataclass
class Site:
    broker: Mosquitto
    plan: SimPlan
    svc_password: str
    state_dir: Path


@pytest.fixture()
def site(make_mosquitto: Callable[[], Mosquitto], tmp_path: Path) -> Iterator[Site]:
    """A real broker whose users and ACL come from a registry holding a 2-home simulated site."""
    from dolbom.registry.broker import sync_broker
    from dolbom.registry.db import migrate, session_factory
    from dolbom.registry.service import ensure_service_account
    from dolbom.sim.provision import ensure_plan

    broker = make_mosquitto()
    url = f"sqlite:///{tmp_path / 'registry.db'}"
    migrate(url)
    factory = session_factory(url)
    plan, _ = ensure_plan(factory, "s1", 2, 3, tmp_path / "plan.json")
    pw = secrets.token_urlsafe(12)
    with factory.begin() as s:
        ensure_service_account(s, SVC, "ingest", pw)  # reads uplink, writes acks
    with factory() as s:
        sync_broker(s, broker.files, TOPICS)
    asyncio.run(_until_login(broker, pw))  # the SIGHUP reload is asynchronous
    # A short path: unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="sim-", dir="/tmp") as state:
        yield Site(broker, plan, pw, Path(state))
    factory.kw["bind"].dispose()


async def _until_login(broker: Mosquitto, password: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        c = Client("127.0.0.1", broker.port, "probe", username=SVC, password=password)
        try:
            await c.connect(timeout=2)
        except MqttError:
            assert time.monotonic() < deadline, "the broker never accepted the service account"
            await asyncio.sleep(0.05)
            continue
        await c.disconnect()
        return


class Watcher:
    """A service-account subscriber that decodes everything under care/v1/#."""

    def __init__(self, site: Site, name: str = "watcher") -> None:
        self.got: list[tuple[Received, Message]] = []
        self.client = Client("127.0.0.1", site.broker.port, name, username=SVC,
                             password=site.svc_password, on_message=self._on)

    def _on(self, m: Received) -> None:
        self.client.ack(m)
        topic = TOPICS.parse(m.topic)
        assert topic is not None, m.topic
        self.got.append((m, decode(topic, m.payload)))  # raises if off-contract

    async def start(self) -> Watcher:
        await self.client.connect()
        await self.client.subscribe([("care/v1/#", 1)])
        return self

    def of(self, device: str, name: str | None = None) -> list[Message]:
        return [msg for _, msg in self.got if msg.topic.device == device
                and (name is None or msg.topic.name == name)]

    def statuses(self, device: str) -> list[str]:
        return [m.state for m in self.of(device) if isinstance(m, Status)]

    async def until(self, pred: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def settings_for(site: Site, **opts: float) -> SimSettings:
    base: dict[str, float] = {"tick_s": 0.05, "retry_initial_s": 0.3, "retry_cap_s": 0.6,
                              "connect_backoff_cap_s": 1.0, "drain_s": 1.0}
    base.update(opts)
    return SimSettings(mqtt=MqttSettings(port=site.broker.port),
                       sim=SimOptions(state_dir=site.state_dir, **base))


@asynccontextmanager
async def simulator(site: Site, speed: float = 600.0, **opts: float
                    ) -> AsyncIterator[tuple[SimStats, Path]]:
    stats, stop = SimStats(), asyncio.Event()
    sock = site.state_dir / "sim.sock"
    task = asyncio.create_task(run_simulator(
        site.plan, settings_for(site, **opts), speed=speed, stats=stats, control_socket=sock,
        random_incident_rate=0.0, stop=stop, start_tod_s=9 * 3600.0), name="sim")
    try:
        deadline = time.monotonic() + 20
        while stats.connected < stats.devices or not sock.exists():
            assert not task.done(), task.exception()
            assert time.monotonic() < deadline, f"devices did not connect: {stats.snapshot()}"
            await asyncio.sleep(0.05)
        yield stats, sock
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_devices_speak_the_contract_with_their_own_credentials(site: Site) -> None:
    """Each device logs in as itself; births, telemetry and events decode; stop leaves no Will."""
    w = await Watcher(site).start()
    devices = [d for _, d in site.plan.devices()]
    async with simulator(site) as (stats, _):
        await w.until(lambda: all(w.statuses(d.id) and w.of(d.id, "") and any(
            isinstance(m, Telemetry) for m in w.of(d.id)) for d in devices),
            "a status and a telemetry message from every device")
        await w.until(lambda: any(isinstance(m, Event) and m.type == "motion"
                                  for _, m in w.got), "motion events")
        late = await Watcher(site, "late").start()  # retained statuses reach new subscribers
        await late.until(lambda: {m.topic.device for r, m in late.got if r.retain
                                  and isinstance(m, Status)} == {d.id for d in devices},
                         "a retained status for every device", timeout=5)
        for r, m in late.got:
            if r.retain and isinstance(m, Status):
                dev = next(d for d in devices if d.id == m.topic.device)
                assert m.state in (("ready",) if dev.power is Power.MAINS
                                   else ("ready", "sleeping"))
                assert (m.kind, m.hb, m.boot) == (dev.kind, dev.hb, 1)
        await late.client.disconnect()
        assert stats.snapshot().sent["status"] >= len(devices)
    await w.until(lambda: all(w.statuses(d.id)[-1] == "disconnected" for d in devices),
                  "a clean goodbye from every device", timeout=5)
    await asyncio.sleep(0.5)
    assert not any("lost" in w.statuses(d.id) for d in devices)  # clean DISCONNECT: no Will
    for d in devices:
        seqs = [m.env.seq for m in w.of(d.id) if isinstance(m, Event | Telemetry)]
        assert seqs == sorted(set(seqs)) and seqs[0] == 1
        assert all(m.env.tq == 2 for m in w.of(d.id) if isinstance(m, Event | Telemetry))
    await w.client.disconnect()


async def test_button_is_resent_until_acked(site: Site) -> None:
    """An injected press is re-sent with the same (boot, seq) until the ack, then never again."""
    w = await Watcher(site).start()
    async with simulator(site) as (stats, sock):
        assert (await control.send(sock, {"incident": "button", "home": "h001"}))["ok"]
        await w.until(lambda: len(w.of("btn-h001", "button")) >= 3, "three sends of the press")
        presses = [m for m in w.of("btn-h001", "button") if isinstance(m, Event)]
        keys = {(m.env.boot, m.env.seq) for m in presses}
        assert len(keys) == 1
        ((boot, seq),) = keys
        await w.client.publish(TOPICS.ack("s1", "btn-h001"), encode_ack(boot, seq), qos=1)
        await w.until(lambda: stats.life_safety_pending == 0, "the outbox to empty", timeout=5)
        assert stats.life_safety_acked == 1
        await asyncio.sleep(0.3)  # a send already in flight may still land
        n = len(w.of("btn-h001", "button"))
        await asyncio.sleep(2.0)  # > 3 retry intervals
        assert len(w.of("btn-h001", "button")) == n
        reply = await control.send(sock, {"stats": True})
        assert reply["stats"]["life_safety_acked"] == 1
    await w.client.disconnect()


async def test_device_death_fires_the_will_and_recover_reboots(site: Site) -> None:
    """device_death drops the link uncleanly (broker publishes lost); recover comes back boot 2."""
    w = await Watcher(site).start()
    async with simulator(site) as (stats, sock):
        reply = await control.send(sock, {"incident": "device_death", "home": "h001",
                                          "device": "door-h001"})
        assert reply == {"ok": True}
        await w.until(lambda: "lost" in w.statuses("door-h001"), "the Will of door-h001")
        lost = [r for r, m in w.got if isinstance(m, Status) and m.state == "lost"]
        assert [orjson.loads(r.payload) for r in lost] == [{"state": "lost"}]
        assert stats.dead == 1 and stats.connected == stats.devices - 1
        assert (await control.send(sock, {"incident": "recover", "home": "h001"}))["ok"]
        await w.until(lambda: any(isinstance(m, Status) and m.state == "ready" and m.boot == 2
                                  for m in w.of("door-h001")), "door-h001 back with boot 2")
        bad = await control.send(sock, {"incident": "meteor", "home": "h001"})
        assert not bad["ok"] and "unknown incident" in bad["error"]
    await w.client.disconnect()


async def test_reconnects_after_broker_restart_and_delivers_the_press(site: Site) -> None:
    """With the broker killed, a press waits; after restart every device reconnects and sends it."""
    async with simulator(site) as (stats, sock):
        site.broker.kill()
        deadline = time.monotonic() + 15
        while stats.connected:
            assert time.monotonic() < deadline, "devices did not notice the broker was gone"
            await asyncio.sleep(0.05)
        assert (await control.send(sock, {"incident": "button", "home": "h002"}))["ok"]
        site.broker.start()
        w = await Watcher(site).start()
        await w.until(lambda: stats.connected == stats.devices, "every device to reconnect")
        await w.until(lambda: bool(w.of("btn-h002", "button")), "the press made while offline")
        assert stats.reconnects >= stats.devices
        await w.client.disconnect()


async def test_wrong_password_is_refused_and_retried_quietly(site: Site) -> None:
    """A device whose password the broker does not know counts failures and keeps the rest up."""
    first, *rest = site.plan.homes
    wrong = [dataclasses.replace(h, devices=tuple(dataclasses.replace(d, password="wrong")
                                                  for d in h.devices)) for h in rest]
    bad = dataclasses.replace(site.plan, homes=(first, *wrong))
    stats, stop = SimStats(), asyncio.Event()
    task = asyncio.create_task(run_simulator(
        bad, settings_for(site), speed=60.0, stats=stats, control_socket=None,
        random_incident_rate=0.0, stop=stop))
    try:
        deadline = time.monotonic() + 10
        while stats.connect_failures < 12 or stats.connected < 6:
            assert time.monotonic() < deadline, stats.snapshot()
            await asyncio.sleep(0.05)
        assert stats.connected == 6
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def test_cancelling_the_task_is_a_clean_stop(site: Site) -> None:
    """Cancelling run_simulator (as the demo may) still disconnects cleanly: no Will fires."""
    w = await Watcher(site).start()
    stats, stop = SimStats(), asyncio.Event()
    task = asyncio.create_task(run_simulator(
        site.plan, settings_for(site), speed=60.0, stats=stats, control_socket=None,
        random_incident_rate=0.0, stop=stop))
    await w.until(lambda: stats.connected == stats.devices > 0, "devices to connect")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 10)
    await w.until(lambda: all(w.statuses(d.id)[-1:] == ["disconnected"]
                              for _, d in site.plan.devices()), "a goodbye from each", 5)
    await asyncio.sleep(0.5)
    assert not any("lost" in w.statuses(d.id) for _, d in site.plan.devices())
    await w.client.disconnect()

