"""The real firmware (mpy-cross bundle) under the real MicroPython unix port, on a
simulated ESP32, against the real Mosquitto and the real alerts service (which
journals life-safety events and sends the ``ack``). Waits are on real events, bounded."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
from pathlib import Path

import orjson
import pytest
from sqlalchemy import select

from dolbom.mqtt import Client
from dolbom.protocol import Event, OutboxHealth, Status, Telemetry
from dolbom.registry.db import session_factory
from dolbom.registry.models import AlarmJournal
from dolbom.stack.stack import Stack
from tests.firmware.conftest import observing, site_id, until
from tests.firmware.simnode import BUTTON, DOOR, LED, SimNode, device_config, make_flash
from tests.integration.alerting import (
    Clock,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)

pytestmark = pytest.mark.integration

# A generic ESP32 (no PSRAM) gives MicroPython a GC heap of about 111 KB, about 90 KB of
# it free after boot (micropython/micropython#7043); Wi-Fi's buffers live in the IDF heap,
# outside it. The unix port measured here is 64-bit: pointers, dict entries and objects
# are twice the ESP32's size, so 64 KiB measured here is well inside an ESP32's 90 KB.
HEAP_BUDGET = 64 * 1024


def journal(stack: Stack, dev: str) -> list[tuple[int, int]]:
    """(boot, seq) of the device's journalled life-safety events, in arrival order."""
    with session_factory(stack.database_url)() as s:
        rows = s.scalars(select(AlarmJournal).where(AlarmJournal.device_id == dev)
                         .order_by(AlarmJournal.received_at))
        return [(r.boot, r.seq) for r in rows]


@pytest.fixture()
def dev() -> str:
    return "esp32-" + secrets.token_hex(3)


@pytest.fixture()
def site() -> str:
    return site_id()


class Home:
    """A registered home with this device, its config file and a built flash."""

    def __init__(self, stack: Stack, site: str, dev: str, hook: str, tmp: Path,
                 nodes: list[SimNode], kind: str = "multisensor", power: str = "mains",
                 sensors: tuple[str, ...] = ("button", "door", "pir"),
                 **extra: object) -> None:
        pw = care_home(stack, site, "h" + site, {dev: kind}, hook)
        cfg = device_config(tmp / "dev.json", site, dev, pw[dev], stack.mosquitto.port,
                            kind, power)
        self.node = SimNode(make_flash(tmp, cfg, sensors, **extra))
        nodes.append(self.node)


async def test_boot_ready_then_button_delivered_acked_and_cleared(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path, site: str, dev: str) -> None:
    """Boot → retained `ready` birth; a press → a valid event on the broker, journalled,
    acked, removed from the flash outbox, the resident told; heap within budget."""
    async with webhook_receiver() as rec:
        node = Home(fw_stack, site, dev, rec.url, tmp_path, nodes).node
        async with running_alerts(alerts_settings(fw_stack), Clock()):
            node.start()
            await node.wait_for(r"mqtt up 1", 15)
            async with observing(fw_stack, site, dev) as obs:
                await until(lambda: obs.of("status"), 5, "the retained status")
                _, _, retained, status = obs.of("status")[0]
                assert retained and isinstance(status, Status)
                assert (status.state, status.boot, status.fw, status.kind, status.hb) == \
                    ("ready", 1, "1.0.0", "multisensor", 60)
                assert status.outbox == OutboxHealth(depth=0, evicted=0, merged=0, werr=0)

                mark = node.count()
                await node.press(BUTTON, 200)
                (kept,) = await node.wait_for(r"event button 1 (\d+) kept", 5, after=mark)
                seq = int(kept.group(1))
                await node.wait_for(rf"acked 1 {seq} pending 0", 10, after=mark)
                assert node.outbox() == []  # gone from flash once journalled upstream
                await node.wait_for(r"feedback notified", 5, after=mark)
                await node.wait_for(rf"@pin {LED} 1", 5, after=mark)

                events = [m for _, _, _, m in obs.of("event/button")]
                assert events and all(isinstance(e, Event) for e in events)
                e = events[0]
                assert isinstance(e, Event) and e.life_safety and e.val == "press"
                assert (e.env.boot, e.env.seq) == (1, seq) and e.env.ts > 1.7e12
                assert journal(fw_stack, dev) == [(1, seq)]

                # the door reed switch: debounced, reported as an activity event
                mark = node.count()
                node.send({"pin": DOOR, "v": 0})
                await node.wait_for(r"event door", 5, after=mark)
                await until(lambda: obs.of("event/door"), 5, "door event")
                door = obs.of("event/door")[0][3]
                assert isinstance(door, Event) and door.val == "closed"

            assert node.find(r"@wdt start 3000") and not node.find(r"@wdt expired")
            await node.wait_for(r"heap live", 5)
            live, alloc, sim = node.heap_figures()
            print(f"\nfirmware heap: peak live {live} B, peak allocated {alloc} B "
                  f"(simulator's own {sim} B excluded; 64-bit unix port)")
            assert live < HEAP_BUDGET, f"peak live heap {live} B > {HEAP_BUDGET} B"


async def test_broker_killed_20s_every_press_delivered_in_order_once(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path, site: str, dev: str) -> None:
    """Presses during a 20 s broker outage stay on flash, the repeats counted into the
    first of them (one event, ``"n": 3``), and arrive afterwards in order; after dedup
    by (boot, seq) nothing is duplicated or missing."""
    async with webhook_receiver() as rec:
        node = Home(fw_stack, site, dev, rec.url, tmp_path, nodes).node
        async with running_alerts(alerts_settings(fw_stack), Clock()):
            node.start()
            await node.wait_for(r"mqtt up 1", 15)
            async with observing(fw_stack, site, dev) as obs:
                mark = node.count()
                await node.press()
                await node.wait_for(r"acked 1 \d+ pending 0", 10, after=mark)

                loop = asyncio.get_running_loop()
                await asyncio.to_thread(fw_stack.mosquitto.kill)
                down_at = loop.time()
                await node.wait_for(r"mqtt down", 10, after=mark)
                for n in range(2, 5):
                    await node.press()
                    await node.wait_for(r"event button 1 \d+ (kept|repeat)", 5, after=mark,
                                        count=n)
                kept = node.find(r"event button 1 (\d+) kept", mark)
                seqs = [int(m.group(1)) for m in kept]
                assert len(seqs) == 2  # the first press, then the first in the outage
                assert node.find(rf"event button 1 {seqs[1]} repeat 3", mark)
                assert node.outbox() == [(1, seqs[1])]  # the outage presses, one event
                # the sensors kept running while the broker was gone
                node.send({"pin": DOOR, "v": 0})
                await node.wait_for(r"event door", 5, after=mark)

                await asyncio.sleep(max(0.0, 20 - (loop.time() - down_at)))
                await asyncio.to_thread(fw_stack.mosquitto.start)
                await node.wait_for(r"acked 1 \d+ pending 0", 45, after=mark, count=2)

                assert node.outbox() == []
                got = journal(fw_stack, dev)
                assert got == [(1, s) for s in seqs], got  # all four, in press order
                seen: list[tuple[int, int]] = []
                for _, _, _, m in obs.of("event/button"):
                    assert isinstance(m, Event)
                    if (m.env.boot, m.env.seq) not in seen:
                        seen.append((m.env.boot, m.env.seq))
                assert seen == got  # after dedup: each once, in order
                counts = {p["seq"]: p.get("n", 1) for p in obs.payloads("event/button")}
                assert counts == {seqs[0]: 1, seqs[1]: 3}  # all four presses told


async def test_wifi_loss_never_blocks_the_sensors(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path, site: str, dev: str) -> None:
    """Wi-Fi drops: the node keeps sensing, keeps the alarms on flash, and delivers them
    once the network is back (the watchdog never fires meanwhile). A press made while the
    event loop was blocked is still caught, by its interrupt."""
    async with webhook_receiver() as rec:
        node = Home(fw_stack, site, dev, rec.url, tmp_path, nodes).node
        async with running_alerts(alerts_settings(fw_stack), Clock()):
            node.start()
            await node.wait_for(r"mqtt up 1", 15)
            node.send({"wifi": 0})
            await node.wait_for(r"wifi lost", 5)
            await node.press()
            (kept,) = await node.wait_for(r"event button 1 (\d+) kept", 5)
            seq = int(kept.group(1))
            node.send({"pin": DOOR, "v": 0})
            await node.wait_for(r"event door", 5)
            node.send({"stall": 300, "pulse": BUTTON})  # a 300 ms press, loop blocked
            # caught, and counted into the press still waiting unsent
            await node.wait_for(rf"event button 1 {seq} repeat 2", 5)
            assert node.outbox() == [(1, seq)]
            await asyncio.sleep(1.0)
            assert not node.find(r"sent 1", node.mark)  # nothing left while offline
            node.send({"wifi": 1})
            await node.wait_for(r"mqtt up 2", 15)
            await node.wait_for(r"acked 1 \d+ pending 0", 10)
            assert node.outbox() == [] and not node.find(r"@wdt expired")
            assert journal(fw_stack, dev) == [(1, seq)]


async def test_silent_broker_detected_by_keepalive_and_left(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path, site: str, dev: str) -> None:
    """A half-open connection (the broker stops answering, no TCP reset: the usual Wi-Fi
    failure) is detected by the keepalive within 1.5 x keepalive, and the node reconnects
    when the broker answers again, then delivers what it kept meanwhile."""
    async with webhook_receiver() as rec:
        node = Home(fw_stack, site, dev, rec.url, tmp_path, nodes, keepalive_s=2).node
        node.start()
        await node.wait_for(r"mqtt up 1", 15)
        broker = fw_stack.mosquitto.proc
        assert broker is not None
        loop = asyncio.get_running_loop()
        os.kill(broker.pid, signal.SIGSTOP)  # the broker we started goes silent
        try:
            stopped = loop.time()
            await node.wait_for(r"mqtt down", 8)
            assert loop.time() - stopped < 6  # 1.5 x keepalive (3 s) + a ping period
            await node.press()
            (kept,) = await node.wait_for(r"event button 1 (\d+) kept", 5)
        finally:
            os.kill(broker.pid, signal.SIGCONT)
        await node.wait_for(r"mqtt up 2", 20)
        await node.wait_for(rf"sent 1 {kept.group(1)}", 10)


async def test_node_killed_broker_publishes_lost(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path, site: str, dev: str) -> None:
    """An idle node stays connected by its keepalive pings; a node that dies without a
    clean disconnect is announced `lost` (its Last Will)."""
    async with webhook_receiver() as rec:
        node = Home(fw_stack, site, dev, rec.url, tmp_path, nodes, keepalive_s=2).node
        node.start()
        await node.wait_for(r"mqtt up 1", 15)
        async with observing(fw_stack, site, dev) as obs:
            await until(lambda: obs.of("status"), 5, "ready")
            # idle for more than 1.5 x keepalive: the broker would drop a silent client
            await asyncio.sleep(4.5)
            assert not node.find(r"mqtt down") and node.find(r"mqtt up") and \
                not node.find(r"mqtt up 2")
            assert obs.payloads("status")[-1]["state"] == "ready"
            node.kill()
            await until(lambda: any(isinstance(m, Status) and m.state == "lost"
                                    for _, _, _, m in obs.of("status")), 10, "lost")
            payloads = obs.payloads("status")
            assert payloads[-1] == {"state": "lost"}


async def test_unacked_event_is_resent_after_a_reboot(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path, site: str, dev: str) -> None:
    """An event sent but never acked survives a power cut on flash and is re-sent with
    the same (boot, seq) and bytes after the next boot, until acked. Heartbeats flow every
    `hb` seconds meanwhile."""
    async with webhook_receiver() as rec:
        node = Home(fw_stack, site, dev, rec.url, tmp_path, nodes, hb=1).node
        node.start()
        await node.wait_for(r"mqtt up 1", 15)
        async with observing(fw_stack, site, dev) as obs:
            await node.press()
            (kept,) = await node.wait_for(r"event button 1 (\d+) kept", 5)
            seq = int(kept.group(1))
            await node.wait_for(rf"sent 1 {seq}", 5)
            assert node.outbox() == [(1, seq)]  # nobody acked: the alerts service is down
            await asyncio.sleep(2.5)  # heartbeats (hb = 1 s) meanwhile
            node.kill()

            async with running_alerts(alerts_settings(fw_stack), Clock()):
                node.start()
                await node.wait_for(r"boot 2 .* pending 1", 10)
                await node.wait_for(rf"acked 1 {seq} pending 0", 15)
            assert node.outbox() == []
            assert journal(fw_stack, dev) == [(1, seq)]
            sent = [p for _, p, _, _ in obs.of("event/button")]
            assert len(sent) >= 2 and len(set(sent)) == 1  # the very same message again
            statuses = [m for _, _, _, m in obs.of("status")]
            assert any(isinstance(s, Status) and s.boot == 2 for s in statuses)
            beats = [m for _, _, _, m in obs.of("telemetry")]
            assert len(beats) >= 3 and all(isinstance(b, Telemetry) for b in beats)
            boot1 = [b.env.seq for b in beats if isinstance(b, Telemetry) and b.env.boot == 1]
            assert boot1 == sorted(set(boot1)) and len(boot1) >= 2


async def test_battery_node_sleeps_cleanly_and_wakes_on_the_button(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path, site: str, dev: str) -> None:
    """Battery mode: report, announce `sleeping` with `next`, disconnect cleanly (no
    `lost`), deep sleep with pin wake; a button wake keeps boot and continues seq."""
    async with webhook_receiver() as rec:
        node = Home(fw_stack, site, dev, rec.url, tmp_path, nodes, kind="button",
                    power="battery", sensors=("button", "door", "battery"), sleep_s=300,
                    awake_s=8).node
        async with running_alerts(alerts_settings(fw_stack), Clock()), \
                observing(fw_stack, site, dev) as obs:
            node.start(pins={DOOR: 0})  # door closed: opening it wakes the node
            (sleep,) = await node.wait_for(r"@deepsleep (\d+) low \[(\d*)\] high \[(\d*)\]", 20)
            assert node.wait_exit() == 0
            assert sleep.groups() == ("300000", str(BUTTON), str(DOOR))
            await until(lambda: any(isinstance(m, Status) and m.state == "sleeping"
                                    for _, _, _, m in obs.of("status")), 5, "sleeping")
            await asyncio.sleep(1.0)
            last = obs.of("status")[-1][3]
            assert isinstance(last, Status)
            assert (last.state, last.next, last.boot) == ("sleeping", 300, 1)  # no Will
            tel = [m for _, _, _, m in obs.of("telemetry")]
            assert tel and isinstance(tel[0], Telemetry)
            assert tel[0].samples[0].readings["battery_pct"] == 77.0  # 4.0 V on the curve
            assert isinstance(tel[-1], Telemetry)
            seq_before = tel[-1].env.seq

            node.start(reset="deepsleep", pins={BUTTON: 0, DOOR: 0})  # the button woke it
            (ev,) = await node.wait_for(r"event button 1 (\d+) kept", 10)
            node.send({"pin": BUTTON, "v": 1})
            assert int(ev.group(1)) > seq_before  # same boot, seq went on (RTC memory)
            await node.wait_for(r"acked 1 \d+ pending 0", 10)
            await node.wait_for(r"@deepsleep", 15)
            assert node.wait_exit() == 0
            assert node.outbox() == []
            events = [m for _, _, _, m in obs.of("event/button")]
            assert events and isinstance(events[0], Event) and events[0].env.boot == 1


async def test_safe_mode_commands_and_the_other_sensors(
        fw_stack: Stack, nodes: list[SimNode], tmp_path: Path, site: str, dev: str) -> None:
    """After 3 failed boots the node comes up in safe mode (network only, no sensors);
    `config` fixes it and reboots; `ping` and `identify` are answered idempotently; the
    radar, DHT22 and battery drivers report through the real broker (a failed DHT read
    is a null reading, not a wrong one)."""
    async with webhook_receiver() as rec:
        node = Home(fw_stack, site, dev, rec.url, tmp_path, nodes,
                    sensors=("button", "ld2410", "dht22", "battery")).node
        (node.flash / "bootfail.txt").write_text("3")
        svc = Client("127.0.0.1", fw_stack.mosquitto.port, "svc-" + secrets.token_hex(3),
                     username="svc-alerts", password=fw_stack.secrets.mqtt["svc-alerts"])

        async def cmd(name: str, body: dict[str, object]) -> None:
            await svc.publish(f"care/v1/{site}/{dev}/cmd/{name}", orjson.dumps(body), qos=1)

        def beats() -> list[Telemetry]:
            return [m for _, _, _, m in obs.of("telemetry")
                    if isinstance(m, Telemetry) and m.env.boot == 2]

        async with svc, observing(fw_stack, site, dev) as obs:
            node.start(reset="wdt")  # the 4th reset in a row without a healthy run
            await node.wait_for(r"safe mode after 3 failed boots", 10)
            await node.wait_for(r"mqtt up 1", 15)
            await until(lambda: obs.payloads("status"), 5, "status")
            assert obs.payloads("status")[-1].get("safe") is True
            await node.press()
            await asyncio.sleep(0.5)
            assert not node.find(r"event button", node.mark)  # sensors are off

            await cmd("config", {"id": "c1", "hb": 30})
            assert await node.wait_for(r"cmd config changed \['hb'\]", 5)
            assert node.wait_exit() == 3  # reboot into normal mode
            node.start(reset="soft")
            await node.wait_for(r"boot 2 .* normal", 10)
            await node.wait_for(r"mqtt up 1", 15)
            await until(lambda: obs.payloads("status")[-1].get("hb") == 30, 5, "hb 30")
            await until(lambda: len(beats()) == 1, 5, "the boot heartbeat")
            assert beats()[0].samples[0].readings == {
                "temperature_c": 21.5, "humidity_pct": 45.0, "battery_pct": 77.0,
                "rssi_dbm": -58.0}

            mark = node.count()
            for _ in range(2):
                await cmd("identify", {"id": "i1", "s": 2})
            node.send({"dht": None})  # the DHT22 stops answering
            await asyncio.sleep(2.0)  # the DHT22 is read at most every 2 s (cached between)
            await cmd("ping", {})
            await node.wait_for(r"cmd identify repeat", 5, after=mark)
            assert len(node.find(r"feedback identify", mark)) == 1  # applied once
            await until(lambda: len(beats()) == 2, 5, "ping's heartbeat")
            assert "temperature_c" not in beats()[1].samples[0].readings
            assert orjson.loads(obs.of("telemetry")[-1][1])["readings"]["temperature_c"] is None

            # the mmWave radar on its UART: someone moves, then sits still
            node.send({"uart": 2, "hex": "f4f3f2f10d0002aa031e003c000039000055" "00f8f7f6f5"})
            await until(lambda: obs.of("event/presence"), 5, "presence")
            node.send({"uart": 2, "hex": "f4f3f2f10d0002aa0251000000003b00005500f8f7f6f5"})
            await until(lambda: len(obs.of("event/presence")) == 2, 5, "still presence")
            vals = [m.val for _, _, _, m in obs.of("event/presence") if isinstance(m, Event)]
            assert vals == ["moving", "still"]
