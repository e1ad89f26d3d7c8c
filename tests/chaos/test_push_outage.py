"""The push provider unreachable without an answer (TESTPLAN F-13): the webhook receiver
behind the fault proxy, blackholed, so every delivery hangs until its timeout. The 503
case is `tests/integration/test_alerts.py::test_webhook_down_two_minutes`."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from sqlalchemy import select

from dolbom.registry.db import session_factory
from dolbom.registry.models import Alert, Outbox
from dolbom.stack.stack import Stack
from tests.chaos.conftest import ProxyFactory
from tests.chaos.helpers import press_until_acked
from tests.integration.alerting import (
    Clock,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)
from tests.integration.conftest import TOPICS, device_client, eventually

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


def pending_notices(stack: Stack) -> int:
    with session_factory(stack.database_url)() as s:
        return len(s.scalars(select(Outbox).where(Outbox.status != "sent")).all())


async def test_silent_push_provider_falls_back_and_delivers_once_after(
        stack: Stack, fault_proxy: ProxyFactory) -> None:
    """F-13: deliveries to the webhook hang (no answer at all) for two minutes of clock:
    the alarm stays undelivered (its notices pending, the alert open), the care worker's
    fallback channel gets it, the channel's outage becomes a technical alert; once the
    provider answers again, each person gets the alarm, every copy under its notice's
    delivery id (nothing but the alarm's own notices arrives). Once the link is known
    silent, only its probe notice goes into it: a notice reaches the receiver at most
    twice (the attempt under way when the link fell silent, then the delivery), the
    probe once more per timed-out probe (was: every timed-out attempt of every notice,
    17 copies of 4 notices)."""
    async with webhook_receiver() as rec, fault_proxy(int(rec.url.split(":")[2].split("/")[0])
                                                      ) as p:
        hook = f"http://127.0.0.1:{p.port}/hook"
        pw = care_home(stack, "f13", "hf13", {"btn-f13": "button"}, hook,
                       fallback_url=rec.url.replace("/hook", "/fallback"))
        p.blackhole()
        clock = Clock()
        async with running_alerts(alerts_settings(stack), clock) as svc, \
                device_client(stack, "btn-f13", pw["btn-f13"]) as dev:
            await dev.subscribe([(TOPICS.ack("f13", "btn-f13"), 1)])
            await press_until_acked(dev, "f13", "btn-f13", 1)
            await eventually(lambda: p.counters.accepted >= 1, 10, "a delivery attempted")
            # the first attempts time out (2 s): the link is known silent from then on
            await eventually(lambda: bool(svc.outbox.silent), 10, "the link known silent")
            for _ in range(12):  # two minutes of clock, ten seconds at a time
                clock.advance(10)
                await asyncio.sleep(0.3)
            await eventually(lambda: len(rec.fallback) >= 1, 15, "fallback delivery")
            assert rec.received == []  # nothing got through the silent link
            assert pending_notices(stack) >= 1  # undelivered, and kept
            with session_factory(stack.database_url)() as s:
                (alarm,) = s.scalars(select(Alert).where(Alert.rule == "button")).all()
                assert alarm.status == "open"
            await eventually(lambda: any(
                a.rule == "service_unreachable" for a in _alerts(stack)), 15,
                "technical alert for the channel")
            attempts_in_outage = p.counters.accepted  # one connection per attempt
            held = svc.outbox.held
            p.heal()
            clock.advance(15)
            await eventually(lambda: {(w, d) for w, d in zip(rec.who, rec.deliveries,
                                                             strict=True) if "-raised-" in d}
                             == {("responder", "1-raised-1"), ("worker", "1-raised-1")},
                             30, "delivered after recovery", state=lambda: rec.deliveries)
            # every notice of the alarm (first tier, re-notify) is told to each person
            await eventually(lambda: len(set(zip(rec.deliveries, rec.who, strict=True))) == 4,
                             30, "every notice delivered", state=lambda: rec.deliveries)
            await asyncio.sleep(1.0)  # what the silent link held arrives now too
        # Requests that timed out at the sender still reach the receiver once the link
        # heals (TCP delivers what it held): at least once, as DESIGN.md §5 says, and
        # every copy carries its notice's delivery id, by which the receiver keeps one.
        arrived = list(zip(rec.deliveries, rec.who, strict=True))
        copies = Counter(arrived)
        print(f"\nF-13: {len(arrived)} deliveries arrived, {len(copies)} distinct: "
              f"{sorted(copies.values())}; {attempts_in_outage} attempts into the silent "
              f"link, {held} held back")
        assert held >= 1  # the link's other notices waited for the probe
        # queued after the link was known silent: held until the probe got through
        assert copies[("1-renotify-1-1", "worker")] == 1, copies
        assert copies[("1-renotify-1-1", "responder")] == 1, copies
        _probe, *others = sorted(copies.values(), reverse=True)  # the probe: any number
        assert all(n <= 2 for n in others), copies
        # each attempt into the silent link is at most one copy, then one delivery each
        assert len(arrived) <= attempts_in_outage + len(copies)
        assert {d for d, _ in arrived} <= {"1-raised-1", "1-renotify-1-1"}
        assert {w for _, w in arrived} == {"responder", "worker"}
        assert all(b["rule"] == "button" and b["device"] == "btn-f13" for b in rec.received)
        assert {b["rule"] for b in rec.fallback} == {"button"}


def _alerts(stack: Stack) -> list[Alert]:
    with session_factory(stack.database_url)() as s:
        return list(s.scalars(select(Alert).where(Alert.site_id == "f13")))
