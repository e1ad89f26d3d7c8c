"""Care alerts end to end: real broker, real database, a real HTTP receiver on loopback,
and an injected clock that the tests move instead of sleeping."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from dolbom.alerts import engine
from dolbom.alerts import lifecycle as lc
from dolbom.alerts.model import Outcome
from dolbom.mqtt import Client
from dolbom.protocol import Envelope, encode_event, encode_telemetry
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.registry.models import Alert, Outbox, Suppression
from dolbom.stack.proc import free_port
from dolbom.stack.stack import Stack
from tests.integration.alerting import (
    SECRET,
    Clock,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)
from tests.integration.conftest import TOPICS, device_client, eventually, unique_now_ms

pytestmark = pytest.mark.integration
KEYS = {"id", "rule", "priority", "status", "site", "home", "device", "raised_at", "event_ts",
        "text"}


def alerts(stack: Stack, **where: Any) -> list[Alert]:
    with session_factory(stack.database_url)() as s:
        stmt = select(Alert).order_by(Alert.id)
        for k, v in where.items():
            stmt = stmt.where(getattr(Alert, k) == v)
        return list(s.scalars(stmt))


async def press(c: Client, site: str, dev: str, seq: int, boot: int = 1) -> bytes:
    payload = encode_event(Envelope(boot, seq, unique_now_ms(), 2))
    await c.publish(TOPICS.event(site, dev, "button"), payload, qos=1)
    return payload


async def test_button_is_journalled_acked_and_notified_once(stack: Stack) -> None:
    """A button press: the device gets its ack, each recipient one signed webhook, once."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "a1", "ha1", {"btn-ha1": "button"}, rec.url)
        clock = Clock()
        async with running_alerts(alerts_settings(stack), clock), \
                device_client(stack, "btn-ha1", pw["btn-ha1"]) as dev:
            await dev.subscribe([(TOPICS.ack("a1", "btn-ha1"), 1)])
            await press(dev, "a1", "btn-ha1", 5)
            async with asyncio.timeout(10):
                ack = await anext(aiter(dev.messages()))
            assert orjson.loads(ack.payload) == {"boot": 1, "seq": 5}
            await eventually(lambda: len(rec.received) == 2, 10, "2 deliveries")
            await asyncio.sleep(1.0)  # nothing more arrives
        assert len(rec.received) == 2 and rec.bad_signatures == 0
        assert all(set(body) == KEYS for body in rec.received)
        assert {b["rule"] for b in rec.received} == {"button"}
        assert {b["priority"] for b in rec.received} == {"high"}
        assert {b["home"] for b in rec.received} == {"ha1"}
        assert "홍길동" not in orjson.dumps(rec.received).decode()  # no personal data
        assert sorted(rec.who) == ["responder", "worker"]
        (a,) = alerts(stack, home_id="ha1")
        assert a.rule == "button" and a.status == "open"


async def test_replayed_five_times_is_one_alert_one_notification(stack: Stack) -> None:
    """The same (boot, seq) re-sent 5 times: still one alert and one notice per person."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "a2", "ha2", {"btn-ha2": "button"}, rec.url)
        async with running_alerts(alerts_settings(stack), Clock()) as svc, \
                device_client(stack, "btn-ha2", pw["btn-ha2"]) as dev:
            payload = encode_event(Envelope(3, 9, unique_now_ms(), 2))
            for _ in range(5):
                await dev.publish(TOPICS.event("a2", "btn-ha2", "button"), payload, qos=1)
            await eventually(lambda: len(rec.received) == 2, 10, "deliveries")
            await eventually(lambda: svc.alarms_journalled == 5, 10, "5 handled")
            await asyncio.sleep(1.0)
        assert len(rec.received) == 2
        (a,) = alerts(stack, home_id="ha2")
        assert a.count == 1


def _service_env(stack: Stack, hook_secret: str) -> dict[str, str]:
    mqtt, influx = stack.mqtt_settings("svc-alerts"), stack.influx_settings()
    assert mqtt.password and influx.password
    return {**os.environ,
            "DOLBOM_DATABASE_URL": stack.database_url,
            "DOLBOM_MQTT__PORT": str(mqtt.port), "DOLBOM_MQTT__USERNAME": "svc-alerts",
            "DOLBOM_MQTT__PASSWORD": mqtt.password.get_secret_value(),
            "DOLBOM_INFLUX__URL": influx.url, "DOLBOM_INFLUX__USERNAME": "ingest",
            "DOLBOM_INFLUX__PASSWORD": influx.password.get_secret_value(),
            "DOLBOM_NOTIFY__WEBHOOK_SECRET": hook_secret, "DOLBOM_NOTIFY__TIMEOUT_S": "30",
            "DOLBOM_ALERTS__OUTBOX_POLL_S": "0.1",
            "DOLBOM_ALERTS__METRICS_PORT": str(free_port()),
            "DOLBOM_ALERTS__ALARM_METRICS_PORT": str(free_port())}


async def test_sigkill_between_journal_and_notification_notifies_once(stack: Stack) -> None:
    """Killed (SIGKILL, the service and its alarm process) while notifying: after restart
    each person is told exactly once."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "a3", "ha3", {"btn-ha3": "button"}, rec.url)
        rec.hang = True  # the first delivery never completes: the service dies mid-notify
        env = _service_env(stack, SECRET)
        cmd = [sys.executable, "-m", "dolbom.cli", "alerts", "run"]
        first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            await asyncio.sleep(0)
            async with device_client(stack, "btn-ha3", pw["btn-ha3"]) as dev:
                await dev.subscribe([(TOPICS.ack("a3", "btn-ha3"), 1)])
                for _ in range(50):  # until the service is up and journals it (bounded)
                    await press(dev, "a3", "btn-ha3", 1)
                    try:
                        async with asyncio.timeout(0.5):
                            await anext(aiter(dev.messages()))
                        break
                    except TimeoutError:
                        continue
            await eventually(lambda: rec.attempts >= 1, 15, "a delivery under way")
        finally:
            # The alarm process delivers life-safety notices and outlives the service by
            # design: kill it too, as a crash of the whole machine would.
            for child in _children(first.pid):
                os.kill(child, signal.SIGKILL)
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert rec.received == []
        rec.hang = False
        again = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            await eventually(lambda: len(rec.received) == 2, 30, "notices after restart")
            await asyncio.sleep(1.5)
        finally:
            again.terminate()
            again.wait(20)
        assert len(rec.received) == 2
        assert sorted(rec.who) == ["responder", "worker"]  # each person exactly once
        assert len(alerts(stack, home_id="ha3")) == 1


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # not a zombie
    except FileNotFoundError:
        return False


def _notices_sent(stack: Stack, home: str) -> int:
    with session_factory(stack.database_url)() as s:
        return len(s.scalars(select(Outbox).join(Alert, Alert.id == Outbox.alert_id)
                             .where(Alert.home_id == home, Outbox.status == "sent")).all())


async def _acked(dev: Client, site: str, dev_id: str, seq: int, tries: int) -> bool:
    """Press until the ack for ``seq`` comes back (bounded: ``tries`` × 0.5 s)."""
    for _ in range(tries):
        await press(dev, site, dev_id, seq)
        try:
            async with asyncio.timeout(0.5):
                ack = await anext(aiter(dev.messages()))
            if orjson.loads(ack.payload)["seq"] == seq:
                return True
        except TimeoutError:
            continue
    return False


async def test_alarm_process_is_restarted_and_stops_with_the_service(stack: Stack) -> None:
    """The alarm path runs in a process of its own: killed, it is started again and the
    next alarm still gets through; the service stopped (SIGTERM) stops it."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "a9", "ha9", {"btn-ha9": "button"}, rec.url)
        env = _service_env(stack, SECRET)
        service = subprocess.Popen([sys.executable, "-m", "dolbom.cli", "alerts", "run"],
                                   env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            async with device_client(stack, "btn-ha9", pw["btn-ha9"]) as dev:
                await dev.subscribe([(TOPICS.ack("a9", "btn-ha9"), 1)])
                assert await _acked(dev, "a9", "btn-ha9", 1, 60), "first alarm not acked"
                await eventually(lambda: _notices_sent(stack, "ha9") == 2, 15, "notices sent")
                (first,) = _children(service.pid)
                os.kill(first, signal.SIGKILL)
                await eventually(lambda: _children(service.pid) not in ([], [first]), 20,
                                 "a new alarm process")
                assert await _acked(dev, "a9", "btn-ha9", 2, 60), "alarm after restart lost"
                # a new press on the open alert is news: its people are told again
                await eventually(lambda: _notices_sent(stack, "ha9") == 4, 15,
                                 "repeat notices sent")
            (second,) = _children(service.pid)
            service.send_signal(signal.SIGTERM)
            service.wait(30)
        finally:
            if service.poll() is None:
                for child in _children(service.pid):
                    os.kill(child, signal.SIGKILL)
                service.send_signal(signal.SIGKILL)
                service.wait(10)
        await eventually(lambda: not _alive(second), 10, "alarm process stopped with the service")
        # The second press is a repeat of the open button alert: journalled (acked), counted,
        # and told to the same people again (lifecycle.raise_alert), each once.
        (a,) = alerts(stack, home_id="ha9")
        assert a.count == 2
        assert sorted(rec.who) == ["responder", "responder", "worker", "worker"]
        assert len(set(zip(rec.deliveries, rec.who, strict=True))) == 4


async def test_silent_home_tiers_escalation_and_ack(stack: Stack) -> None:
    """A silent home: inactivity at the right tier, escalated when unacknowledged,
    not escalated once acknowledged, and closed when the resident moves again. (A bed
    sensor: the fixed tiers alone, without the quiet concern of motion-sensor homes.)"""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "a4", "ha4", {"bed-ha4": "bed"}, rec.url)
        with session_factory(stack.database_url).begin() as s:
            # A long promised interval, so the clock can jump hours without the sensor
            # being declared lost; it still sends its heartbeat after each jump.
            from dolbom.registry.models import Device, Resident
            dev_row = s.get(Device, "bed-ha4")
            assert dev_row is not None
            dev_row.hb_s = 86_400
            # No sleep window: 12 h of silence is 12 h of clock here (the sleep-window
            # arithmetic is the engine's own tests' job).
            rid = s.scalar(select(Resident.id).where(Resident.home_id == "ha4"))
            assert rid is not None
            registry.set_resident_setting(s, rid, "sleep_start", "00:00")
            registry.set_resident_setting(s, rid, "sleep_end", "00:00")
        clock = Clock()
        seq = 0

        async def heartbeat(dev: Client) -> None:
            nonlocal seq
            seq += 1
            await dev.publish(TOPICS.telemetry("a4", "bed-ha4"),
                              encode_telemetry(Envelope(1, seq, unique_now_ms(), 0),
                                               {"temperature_c": 22.0}), qos=1)

        def tiers() -> list[object]:
            return [a.detail.get("tier") for a in alerts(stack, home_id="ha4",
                                                         rule="inactivity")]

        async with running_alerts(alerts_settings(stack), clock) as svc, \
                device_client(stack, "bed-ha4", pw["bed-ha4"]) as dev:
            caution = engine.next_deadline(svc.homes["ha4"], svc.states["ha4"])
            assert caution is not None
            assert 12 * 3600 - 5 < (caution - svc.rules.now_ms()) / 1000 <= 12 * 3600
            clock.advance((caution - svc.rules.now_ms()) / 1000 - 60)
            await heartbeat(dev)  # a minute before 12 h of silence: nothing yet
            await asyncio.sleep(0.5)
            assert tiers() == []
            clock.advance(61)
            await heartbeat(dev)
            await eventually(lambda: tiers() == [1], 10, "caution (tier 1)")
            await eventually(lambda: len(rec.received) == 1, 10, "worker told")
            clock.advance(30 * 60 + 1)  # medium: escalates to the supervisor after 30 min
            await eventually(lambda: len(rec.received) == 2, 10, "escalated")
            (a,) = alerts(stack, home_id="ha4", rule="inactivity")
            assert a.tier == 2 and rec.who == ["worker", "supervisor"]
            with session_factory(stack.database_url).begin() as s:
                lc.acknowledge(s, a.id, registry.get_user(s, "w-a4"), svc.rules.now())
            nxt = engine.next_deadline(svc.homes["ha4"], svc.states["ha4"])
            assert nxt is not None
            clock.advance((nxt - svc.rules.now_ms()) / 1000 + 1)
            await heartbeat(dev)
            await eventually(lambda: tiers() == [2], 10, "alarm (tier 2)")
            n = len(rec.received)
            clock.advance(31 * 60)
            await asyncio.sleep(1.0)
            assert len(rec.received) == n  # acknowledged: no escalation
            await dev.publish(TOPICS.event("a4", "bed-ha4", "motion"),
                              encode_event(Envelope(1, seq + 1, unique_now_ms(), 0)), qos=1)
            await eventually(lambda: alerts(stack, home_id="ha4", rule="inactivity")[0]
                             .status == "resolved", 10, "auto-resolved on motion")


async def test_lost_pir_is_a_technical_alert_not_inactivity(stack: Stack) -> None:
    """Silence is not safety: a lost PIR raises device_lost (to the worker), never inactivity."""
    async with webhook_receiver() as rec:
        care_home(stack, "a5", "ha5", {"pir-ha5": "multisensor"}, rec.url)
        clock = Clock()
        async with running_alerts(alerts_settings(stack), clock):
            clock.advance(13 * 3600)
            await eventually(lambda: bool(alerts(stack, home_id="ha5", rule="device_lost")), 10,
                             "device lost")
            await asyncio.sleep(0.5)
            clock.advance(30 * 3600)
            await asyncio.sleep(1.0)
        assert alerts(stack, home_id="ha5", rule="inactivity") == []
        (lost,) = alerts(stack, home_id="ha5", rule="device_lost")
        assert lost.priority == "medium"  # the home has no working activity sensor left
        assert any(b["rule"] == "device_lost" for b in rec.received)
        with session_factory(stack.database_url)() as s:
            reasons = {x.reason for x in s.scalars(select(Suppression))
                       if x.home_id == "ha5"}
        assert reasons  # the inactivity verdict was suppressed, and why is recorded


async def test_webhook_down_two_minutes(stack: Stack) -> None:
    """Receiver returns 503 for 2 minutes: fallback used, technical alert raised,
    delivered after recovery, technical alert cleared."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "a6", "ha6", {"btn-ha6": "button"}, rec.url,
                       fallback_url=rec.url.replace("/hook", "/fallback"))
        rec.status = 503
        clock = Clock()
        async with running_alerts(alerts_settings(stack), clock), \
                device_client(stack, "btn-ha6", pw["btn-ha6"]) as dev:
            await press(dev, "a6", "btn-ha6", 1)
            await eventually(lambda: rec.attempts >= 1, 10, "first attempt")
            for _ in range(12):  # two minutes of clock, ten seconds at a time
                clock.advance(10)
                await asyncio.sleep(0.3)
            await eventually(lambda: len(rec.fallback) >= 1, 10, "fallback delivery")
            await eventually(lambda: bool(alerts(stack, rule="service_unreachable",
                                                 site_id="a6")), 10, "technical alert")
            rec.status = 200
            clock.advance(15)

            def raised() -> list[str]:
                return sorted(w for w, d in zip(rec.who, rec.deliveries, strict=True)
                              if "-raised-" in d)

            await eventually(lambda: raised() == ["responder", "worker"], 20,
                             "delivered after recovery", state=lambda: rec.deliveries)
            pairs = list(zip(rec.who, rec.deliveries, strict=True))
            assert len(pairs) == len(set(pairs))  # nobody told the same thing twice
            await eventually(lambda: alerts(stack, rule="service_unreachable", site_id="a6")[0]
                             .status == "resolved", 10, "technical alert cleared")
        assert {b["rule"] for b in rec.fallback} == {"button"}


async def test_away_mode_suppresses_welfare_and_says_why(stack: Stack) -> None:
    """A home in hospital mode raises no inactivity alert; the suppression and its reason
    are recorded; life-safety still works."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "a7", "ha7", {"pir-ha7": "multisensor", "btn-ha7": "button"},
                       rec.url)
        with session_factory(stack.database_url).begin() as s:
            registry.set_home_mode(s, "ha7", "hospital", "admitted to hospital")
            from dolbom.registry.models import Device
            for d in ("pir-ha7", "btn-ha7"):
                row = s.get(Device, d)
                assert row is not None
                row.hb_s = 86_400
        clock = Clock()
        async with running_alerts(alerts_settings(stack), clock) as svc, \
                device_client(stack, "btn-ha7", pw["btn-ha7"]) as dev:
            clock.advance(40 * 3600)
            await asyncio.sleep(1.0)
            assert alerts(stack, home_id="ha7", rule="inactivity") == []
            await press(dev, "a7", "btn-ha7", 1)
            await eventually(lambda: bool(alerts(stack, home_id="ha7", rule="button")), 10,
                             "life-safety still raised")
            await svc.actions.flush(svc.stopping)
        with session_factory(stack.database_url)() as s:
            reasons = [x.reason for x in s.scalars(select(Suppression))
                       if x.home_id == "ha7"]
        assert any("hospital" in r for r in reasons)


async def test_home_silent_while_service_down_is_caught_after_restart(stack: Stack) -> None:
    """Timers survive a restart: rule state is saved; a home whose sensor went silent
    while the service was down gets its alert at the first timer pass after restart."""
    async with webhook_receiver() as rec:
        care_home(stack, "a8", "ha8", {"pir-ha8": "multisensor"}, rec.url)
        clock = Clock()
        async with running_alerts(alerts_settings(stack), clock) as svc:
            lost_at = engine.next_deadline(svc.homes["ha8"], svc.states["ha8"])
            await svc.saver.flush()
        assert lost_at is not None and alerts(stack, home_id="ha8") == []
        clock.advance(3600)  # an hour passes with the service down and the PIR silent
        async with running_alerts(alerts_settings(stack), clock):
            await eventually(lambda: bool(alerts(stack, home_id="ha8", rule="device_lost")),
                             10, "device_lost after restart")
        (a,) = alerts(stack, home_id="ha8", rule="device_lost")
        # raised at the time it matured, not at the restart
        assert abs(a.raised_at.timestamp() * 1000 - lost_at) < 2000


async def test_transitions_and_response_times_reach_influxdb(stack: Stack) -> None:
    """Every transition is an `alert` point; response-time summaries are `alert_response`."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "a9", "ha9", {"btn-ha9": "button"}, rec.url)
        clock = Clock()
        async with running_alerts(alerts_settings(stack), clock) as svc, \
                device_client(stack, "btn-ha9", pw["btn-ha9"]) as dev:
            await press(dev, "a9", "btn-ha9", 1)
            await eventually(lambda: bool(alerts(stack, home_id="ha9")), 10, "alert")
            (a,) = alerts(stack, home_id="ha9")
            with session_factory(stack.database_url).begin() as s:
                worker = registry.get_user(s, "w-a9")
                lc.acknowledge(s, a.id, worker, svc.rules.now())
                lc.resolve(s, a.id, Outcome.FALSE_ALARM, worker, svc.rules.now())
            admin = stack.influx_admin()

            def kinds() -> set[str]:
                rows = admin.rows("SELECT * FROM alert WHERE site='a9' GROUP BY *", "care")
                return {r["kind"] for r in rows}

            await eventually(lambda: kinds() >= {"raised", "acknowledged", "resolved"}, 15,
                             "alert points", state=kinds)
            await eventually(lambda: bool(admin.rows(
                "SELECT * FROM alert_response WHERE site='a9'", "care")), 15, "summary")
        rows = admin.rows("SELECT * FROM alert_response WHERE site='a9' GROUP BY *", "care")
        high = [r for r in rows if r["priority"] == "high"]
        assert high and high[-1]["alerts"] >= 1 and high[-1]["within_60s"] == 1.0


def test_cli_works_an_alert(stack: Stack, capsys: pytest.CaptureFixture[str],
                            monkeypatch: pytest.MonkeyPatch) -> None:
    """list, show, ack, assign, note, resolve, stats from the command line, on the timeline."""
    from dolbom.alerts.model import EscalationTable, Priority, Rule
    from dolbom.cli import main

    care_home(stack, "c1", "hc1", {"btn-hc1": "button"}, "http://127.0.0.1:9/x")
    with session_factory(stack.database_url).begin() as s:
        r = lc.raise_alert(s, site="c1", home="hc1", rule=Rule.FALL, priority=Priority.HIGH,
                           at=datetime.now(UTC), table=EscalationTable())
    monkeypatch.setenv("DOLBOM_DATABASE_URL", stack.database_url)
    aid = str(r.alert_id)
    assert main(["alerts", "list"]) == 0
    assert "fall" in capsys.readouterr().out
    assert main(["alerts", "ack", aid, "--as", "w-c1"]) == 0
    assert main(["alerts", "assign", aid, "--to", "s-c1", "--as", "w-c1"]) == 0
    assert main(["alerts", "note", aid, "called the family", "--as", "s-c1"]) == 0
    assert main(["alerts", "resolve", aid, "--outcome", "visited_ok", "--as", "s-c1"]) == 0
    capsys.readouterr()
    assert main(["alerts", "show", aid]) == 0
    out = capsys.readouterr().out
    for word in ("raised", "acknowledged", "assigned", "note", "resolved", "visited_ok",
                 "called the family"):
        assert word in out
    assert main(["alerts", "resolve", aid, "--outcome", "false_alarm", "--as", "s-c1"]) == 1
    assert "already resolved" in capsys.readouterr().err
    assert main(["alerts", "ack", aid, "--as", "nobody"]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert main(["alerts", "stats", "--site", "c1"]) == 0
    assert "within 60 s" in capsys.readouterr().out


async def test_broker_and_influxdb_outages_are_technical_alerts(stack: Stack) -> None:
    """The broker, then InfluxDB, unreachable for a minute each: one `service_unreachable`
    alert per outage reaches the operator, and each clears when the service is back."""
    async with webhook_receiver() as rec:
        care_home(stack, "a9", "ha9", {"ms-ha9": "multisensor"}, rec.url)
        with session_factory(stack.database_url).begin() as s:
            registry.add_user(s, "op-a9", "admin")
            registry.add_contact(s, "op-a9", "webhook", rec.url + "?who=operator")
        clock = Clock()
        settings = alerts_settings(stack, dependency_down_after_s=60.0, export_s=0.2)
        async with running_alerts(settings, clock) as svc:

            def open_for(service: str) -> list[Alert]:
                return [a for a in alerts(stack, rule="service_unreachable", site_id="a9")
                        if a.detail.get("service") == service]

            def operator_told(service: str) -> bool:
                return any(w == "operator" and b["rule"] == "service_unreachable"
                           and service in b["text"]
                           for w, b in zip(rec.who, rec.received, strict=True))

            for service, server in (("broker", stack.mosquitto), ("influxdb", stack.influx)):
                server.stop()
                await eventually(lambda s=service: s in svc.deps.down(), 20,
                                 f"{service} failure noticed")
                assert not open_for(service)  # a blip raises nothing
                clock.advance(61)
                await eventually(lambda s=service: len(open_for(s)) == 1, 30,
                                 f"{service} technical alert")
                await eventually(lambda s=service: operator_told(s), 20,
                                 f"operator told about {service}")
                server.start()
                await eventually(lambda s=service: open_for(s)[0].status == "resolved", 40,
                                 f"{service} alert cleared")
            assert svc.deps.down() == {}
