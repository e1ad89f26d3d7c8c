"""The life-safety path keeps working while the rules process is dead or stuck.

Real Mosquitto, the registry database, a real signed-webhook receiver on loopback and
`dolbom alerts run` as a real process: it is killed with SIGKILL or stopped with SIGSTOP
while buttons are pressed. The escalation table is shortened by settings (re-notify at
3 s, escalate at 6 s) so the real clock can be used; every wait is bounded. Only the
processes started here are signalled, by PID.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from dolbom.alerts import lifecycle as lc
from dolbom.alerts.alarm.process import AlarmProcess
from dolbom.alerts.model import Priority, Rule
from dolbom.alerts.service import AlertService
from dolbom.mqtt import Client
from dolbom.registry.db import session_factory
from dolbom.registry.models import AlarmJournal, AlertEvent, Outbox
from dolbom.stack.proc import free_port
from dolbom.stack.stack import Stack
from tests.integration.alarm_procs import (
    NOTICES_PER_ALARM,
    alive,
    button_clients,
    button_homes,
    check_escalations,
    children,
    health,
    press_acked,
    proc_state,
    rules_process,
    service_env,
    stop_all,
    told_once_each,
)
from tests.integration.alerting import (
    Clock,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)
from tests.integration.conftest import TOPICS, eventually

pytestmark = pytest.mark.integration


async def test_alarms_survive_a_killed_rules_process_and_are_told_once(
        stack: Stack, tmp_path: Path) -> None:
    """The rules process killed with SIGKILL while buttons are pressed: its alarm process
    lives on; every press is journalled, acked and told by webhook, re-notified and
    escalated on time; the restarted rules process watches that same alarm process (no
    second one) and nobody is told anything twice."""
    async with webhook_receiver() as rec:
        homes = button_homes(stack, "k", rec, 3)
        port = free_port()
        env = service_env(stack, tmp_path / "alarms.lock", port)
        first = rules_process(env)
        second: subprocess.Popen[bytes] | None = None
        alarm_pid = 0
        try:
            async with button_clients(stack, homes) as devs:
                d0 = devs[0]
                await press_acked(d0, homes[0][0], homes[0][2], 1)
                (alarm_pid,) = children(first.pid)
                os.kill(first.pid, signal.SIGKILL)
                first.wait(10)
                for (site, _h, dev, _pw), c in zip(homes[1:], devs[1:], strict=True):
                    await press_acked(c, site, dev, 1)
                assert alive(alarm_pid)
                await eventually(lambda: len(rec.received) == 3 * NOTICES_PER_ALARM, 30,
                                 "raised, re-notified and escalated", lambda: rec.deliveries)
                check_escalations(stack, homes)

                second = rules_process(env)
                await eventually(lambda: (health(port) or {}).get("alarm_process")
                                 == alarm_pid, 30, "the alarm process watched, not replaced",
                                 lambda: health(port))
                assert children(second.pid) == []
                # a new press while both run: told again once (the alert is at tier 2 by
                # now: its supervisor), by the alarm process
                await press_acked(d0, homes[0][0], homes[0][2], 2)
                await eventually(lambda: len(rec.received) == 3 * NOTICES_PER_ALARM + 1, 15,
                                 "the repeat told")
            told_once_each(rec)
            assert {b["rule"] for b in rec.received} == {"button"}
            second.send_signal(signal.SIGTERM)  # it stops the alarm process it watched
            second.wait(30)
            await eventually(lambda: not alive(alarm_pid), 10, "alarm process stopped")
        finally:
            stop_all(first, alarm_pid)
            if second is not None:
                stop_all(second)


async def test_alarms_go_on_while_the_rules_process_is_stopped(stack: Stack,
                                                               tmp_path: Path) -> None:
    """The rules process stopped with SIGSTOP while buttons are pressed: every press is
    journalled, acked and told, re-notified and escalated on time by the alarm process;
    after SIGCONT nobody is told anything twice."""
    async with webhook_receiver() as rec:
        homes = button_homes(stack, "p", rec, 3)
        env = service_env(stack, tmp_path / "alarms.lock", free_port())
        rules = rules_process(env)
        alarm_pid = 0
        try:
            async with button_clients(stack, homes) as devs:
                d0 = devs[0]
                await press_acked(d0, homes[0][0], homes[0][2], 1)
                (alarm_pid,) = children(rules.pid)
                os.kill(rules.pid, signal.SIGSTOP)
                await eventually(lambda: proc_state(rules.pid) == "T", 5, "rules process stopped")
                for (site, _h, dev, _pw), c in zip(homes[1:], devs[1:], strict=True):
                    await press_acked(c, site, dev, 1)
                await eventually(lambda: len(rec.received) == 3 * NOTICES_PER_ALARM, 30,
                                 "raised, re-notified and escalated", lambda: rec.deliveries)
                assert proc_state(rules.pid) == "T"  # all of it while the rules process was stopped
                check_escalations(stack, homes)

                os.kill(rules.pid, signal.SIGCONT)
                await press_acked(d0, homes[0][0], homes[0][2], 2)
                await eventually(lambda: len(rec.received) == 3 * NOTICES_PER_ALARM + 1, 15,
                                 "the repeat told")
                assert children(rules.pid) == [alarm_pid]  # the same alarm process
            told_once_each(rec)
            rules.send_signal(signal.SIGTERM)
            rules.wait(30)
            await eventually(lambda: not alive(alarm_pid), 10, "alarm process stopped")
        finally:
            stop_all(rules, alarm_pid)


async def test_escalation_is_split_by_priority_between_the_two_processes(stack: Stack) -> None:
    """The alarm process escalates high-priority alerts only and the rules process the
    others only, so however their passes interleave, no alert gets a step twice."""
    async with webhook_receiver() as rec:
        care_home(stack, "e1", "he1", {"btn-he1": "button"}, rec.url)
        clock = Clock()
        settings = alerts_settings(stack, alarm_process="spawn", high_renotify_s=3.0,
                                   high_escalate_s=6.0, medium_escalate_s=9.0,
                                   alarm_metrics_port=0)
        alarm, rules = AlarmProcess(settings, clock=clock), AlertService(settings, clock=clock)
        t0 = datetime.fromtimestamp(clock(), UTC)
        with session_factory(stack.database_url).begin() as s:
            high = lc.raise_alert(s, site="e1", home="he1", rule=Rule.BUTTON,
                                  priority=Priority.HIGH, at=t0, table=alarm.table,
                                  event_key=("btn-he1", 1, 1)).alert_id
            medium = lc.raise_alert(s, site="e1", home="he1", rule=Rule.INACTIVITY,
                                    priority=Priority.MEDIUM, at=t0,
                                    table=rules.table).alert_id
        done = Counter[str]()
        for step in range(12):  # passes of both, in both orders, every second of 12 s
            clock.advance(1.0)
            passes = [("alarm", alarm.escalations.run_once), ("rules", rules.escalations.run_once)]
            for who, run in passes if step % 2 else passes[::-1]:
                done[who] += await run()
        assert done == {"alarm": 2, "rules": 1}
        with session_factory(stack.database_url)() as s:
            def steps(alert_id: int) -> list[str]:
                return [k for k in s.scalars(select(AlertEvent.kind).where(
                    AlertEvent.alert_id == alert_id).order_by(AlertEvent.id))
                    if k in ("renotified", "escalated")]

            assert steps(high) == ["renotified", "escalated"]
            assert steps(medium) == ["escalated"]
            keys = list(s.scalars(select(Outbox.dedup_key)))
        assert len(keys) == len(set(keys))


async def test_alerts_service_over_a_tls_only_listener_journals_a_press(stack: Stack) -> None:
    """With its broker settings naming only the TLS listener, the alerts service (both its
    sessions) connects, and a button press over TLS is journalled, acked and told."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "t5", "ht5", {"btn-ht5": "button"}, rec.url)
        tls = stack.mqtt_tls_settings("svc-alerts")
        assert tls.use_tls and tls.port == stack.mosquitto.tls_port
        settings = alerts_settings(stack).model_copy(update={"mqtt": tls})
        async with running_alerts(settings, Clock()) as svc, \
                Client("127.0.0.1", tls.port, "btn-ht5", username="btn-ht5",
                       password=pw["btn-ht5"], ssl=tls.ssl_context()) as dev:
            assert svc.stream_client is not None and svc.stream_client.ssl is not None
            await dev.subscribe([(TOPICS.ack("t5", "btn-ht5"), 1)])
            await press_acked(dev, "t5", "btn-ht5", 1)
            await eventually(lambda: len(rec.received) == 2, 10, "2 deliveries")
        with session_factory(stack.database_url)() as s:
            assert s.get(AlarmJournal, ("btn-ht5", 1, 1)) is not None


async def test_alarm_process_over_a_tls_only_listener_journals_a_press(stack: Stack) -> None:
    """The alarm process with its broker settings naming only the TLS listener: its session
    connects, and a button press is journalled, acked and told."""
    async with webhook_receiver() as rec:
        pw = care_home(stack, "t6", "ht6", {"btn-ht6": "button"}, rec.url)
        tls = stack.mqtt_tls_settings("svc-alerts")
        settings = alerts_settings(stack, alarm_process="external",
                                   alarm_metrics_port=0).model_copy(update={"mqtt": tls})
        proc = AlarmProcess(settings)
        task = asyncio.create_task(proc.run(), name="alarm-process")
        try:
            await eventually(lambda: proc.path.connected or task.done(), 15,
                             "alarm session over TLS")
            assert not task.done()
            async with Client("127.0.0.1", tls.port, "btn-ht6", username="btn-ht6",
                              password=pw["btn-ht6"], ssl=tls.ssl_context()) as dev:
                await dev.subscribe([(TOPICS.ack("t6", "btn-ht6"), 1)])
                await press_acked(dev, "t6", "btn-ht6", 1)
            await eventually(lambda: len(rec.received) == 2, 10, "2 deliveries")
        finally:
            proc.stopping.set()
            await asyncio.wait_for(task, 30)
        with session_factory(stack.database_url)() as s:
            assert s.get(AlarmJournal, ("btn-ht6", 1, 1)) is not None

