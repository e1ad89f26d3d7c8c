"""Life-safety alarms that cannot be routed to a home or decoded, end to end: real broker,
real database, a real signed-webhook receiver on loopback, an injected clock."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from dolbom.alerts.alarm.decode import undecodable_key
from dolbom.mqtt import Client
from dolbom.protocol import Envelope, encode_event
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.registry.models import AlarmJournal, Alert, Outbox
from dolbom.stack.stack import Stack
from tests.integration.alerting import (
    Clock,
    Receiver,
    alerts_settings,
    care_home,
    running_alerts,
    webhook_receiver,
)
from tests.integration.conftest import (
    TOPICS,
    device_client,
    eventually,
    ingest_settings,
    running_ingest,
    unique_now_ms,
)

pytestmark = pytest.mark.integration


def site_with_people(stack: Stack, site: str, rec: Receiver) -> dict[str, str]:
    """care_home's site and people, an operator (admin), and a corridor smoke detector
    registered to the site but to no home; returns device passwords."""
    pw = care_home(stack, site, f"h{site}", {f"btn-{site}": "button"}, rec.url)
    with session_factory(stack.database_url).begin() as s:
        registry.add_user(s, f"op-{site}", "admin", locale="en")
        registry.add_contact(s, f"op-{site}", "webhook", rec.url + "?who=operator")
        _, pw[f"smk-{site}"] = registry.add_device(s, f"smk-{site}", site, None, "smoke",
                                                   power="battery")
    stack.sync_broker()
    return pw


def outbox_settled(stack: Stack, n: int) -> bool:
    """Exactly ``n`` notices queued, all delivered."""
    with session_factory(stack.database_url)() as s:
        rows = list(s.scalars(select(Outbox.status)))
    return len(rows) == n and all(r == "sent" for r in rows)


async def next_ack(dev: Client) -> dict[str, int]:
    async with asyncio.timeout(10):
        msg = await anext(aiter(dev.messages()))
    ack: dict[str, int] = orjson.loads(msg.payload)
    return ack


async def test_smoke_from_a_device_with_no_home_reaches_people_once(stack: Stack) -> None:
    """Smoke from a device with a site but no home: journalled before its ack, told once to
    the site's supervisor, responder and operator by signed webhook (a redelivery tells
    nobody again), and told again at 60 s while nobody acknowledges it."""
    async with webhook_receiver() as rec:
        pw = site_with_people(stack, "n1", rec)
        clock = Clock()
        async with running_alerts(alerts_settings(stack), clock), \
                device_client(stack, "smk-n1", pw["smk-n1"]) as dev:
            await dev.subscribe([(TOPICS.ack("n1", "smk-n1"), 1)])
            payload = encode_event(Envelope(4, 11, unique_now_ms(), 2))
            await dev.publish(TOPICS.event("n1", "smk-n1", "smoke"), payload, qos=1)
            assert await next_ack(dev) == {"boot": 4, "seq": 11}
            with session_factory(stack.database_url)() as s:  # the ack came after the commit
                assert s.get(AlarmJournal, ("smk-n1", 4, 11)) is not None
            await eventually(lambda: len(rec.received) == 3, 10, "3 deliveries",
                             lambda: rec.who)
            await dev.publish(TOPICS.event("n1", "smk-n1", "smoke"), payload, qos=1)
            assert await next_ack(dev) == {"boot": 4, "seq": 11}  # redelivered: acked again
            await eventually(lambda: outbox_settled(stack, 3), 10, "outbox settled")
            assert len(rec.received) == 3
            assert sorted(rec.who) == ["operator", "responder", "supervisor"]
            assert rec.bad_signatures == 0
            body = rec.received[rec.who.index("responder")]  # the responder reads English
            assert (body["rule"], body["priority"], body["site"], body["home"],
                    body["device"]) == ("smoke", "high", "n1", None, "smk-n1")
            assert "smk-n1" in body["text"] and "not assigned to a home" in body["text"]
            assert "홍길동" not in orjson.dumps(rec.received).decode()
            clock.advance(61)  # unacknowledged: the same people are told again
            await eventually(lambda: len(rec.received) == 6, 10, "re-notified")
            assert sum(d.endswith("renotify-1-1") for d in rec.deliveries) == 3
        with session_factory(stack.database_url)() as s:
            (a,) = s.scalars(select(Alert).where(Alert.device_id == "smk-n1")).all()
            assert (a.home_id, a.status, a.count) == (None, "open", 1)


@pytest.mark.parametrize(("name", "broken"), [
    ("wrong-types", b'{"v":1,"boot":"one","seq":2.5,"ts":"now","tq":2}'),
    ("not-json", b"\x00\x01PRESS\xff"),
])
async def test_broken_button_payload_reaches_people_once(stack: Stack, tmp_path: Path,
                                                         name: str, broken: bytes) -> None:
    """A button press whose payload fails validation still raises the home's button alert,
    told once by signed webhook (a redelivery tells nobody again), never acked, kept in
    the journal by (device, sha256 of payload) and dead-lettered by ingest as before."""
    site = "m1" if name == "wrong-types" else "m2"
    dev_id = f"btn-{site}"
    async with webhook_receiver() as rec:
        pw = site_with_people(stack, site, rec)
        async with running_ingest(ingest_settings(stack, tmp_path / "spool")) as ing, \
                running_alerts(alerts_settings(stack), Clock()) as svc, \
                device_client(stack, dev_id, pw[dev_id]) as dev:
            await dev.subscribe([(TOPICS.ack(site, dev_id), 1)])
            for _ in range(2):  # the device (or the broker) delivers it again
                await dev.publish(TOPICS.event(site, dev_id, "button"), broken, qos=1)
            await eventually(lambda: svc.alarms_journalled == 2, 10, "both handled")
            await eventually(lambda: outbox_settled(stack, 2), 10, "outbox settled")
            assert sorted(rec.who) == ["responder", "worker"] and rec.bad_signatures == 0
            assert {(b["rule"], b["priority"], b["home"], b["device"])
                    for b in rec.received} == {("button", "high", f"h{site}", dev_id)}
            # No ack was built for the broken payload: the first ack is a later valid press.
            await dev.publish(TOPICS.event(site, dev_id, "button"),
                              encode_event(Envelope(1, 1, unique_now_ms(), 2)), qos=1)
            assert await next_ack(dev) == {"boot": 1, "seq": 1}
            await eventually(lambda: ing.snapshot().dead_letters >= 2
                             and ing.snapshot().pending == 0, 15, "dead-lettered")
        with session_factory(stack.database_url)() as s:
            (a,) = s.scalars(select(Alert).where(Alert.device_id == dev_id)).all()
            assert (a.rule, a.home_id, a.count) == ("button", f"h{site}", 2)
            assert a.detail["undecodable"] is True
            assert s.get(AlarmJournal, undecodable_key(dev_id, broken)) is not None
            assert s.scalar(select(func.count()).select_from(AlarmJournal)) == 2
            dead = [d for d in registry.list_dead_letters(s, limit=100) if d.device == dev_id]
            assert dead and all(d.payload == broken for d in dead)
