"""The central broker's ACL for gateways (dolbom.registry.broker), on the real Mosquitto:
a gateway writes exactly its registered children's topics and reads their ack/cmd;
a forged child topic is refused; a child moved to another gateway loses the old route
at the reload."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from dolbom.mqtt import Client, Received
from dolbom.protocol import Envelope, encode_ack, encode_event, encode_telemetry
from dolbom.registry import gateways
from dolbom.registry import service as registry
from dolbom.registry.broker import render_acl
from dolbom.registry.db import session_factory
from dolbom.stack.stack import Stack
from tests.gateway.conftest import TOPICS, Home, watching, write_home
from tests.gateway.test_forward import _up
from tests.integration.conftest import eventually

pytestmark = pytest.mark.integration


def _env(seq: int) -> Envelope:
    return Envelope(1, seq, 1_760_000_000_000 + seq, 2)


@asynccontextmanager
async def as_user(stack: Stack, user: str, pw: str,
                  inbox: list[Received] | None = None) -> AsyncIterator[Client]:
    c = Client("127.0.0.1", stack.mosquitto.tls_port or 0, user + secrets.token_hex(2),
               username=user, password=pw, ssl=stack.mqtt_tls_settings().ssl_context(),
               on_message=(inbox.append if inbox is not None else None))
    await c.connect()
    try:
        yield c
    finally:
        await c.disconnect()


def _setup(stack: Stack) -> tuple[str, dict[str, str]]:
    """A site with two gateways, a child of the first, and a device of nobody."""
    site = "acl" + secrets.token_hex(3)
    pw: dict[str, str] = {}
    with session_factory(stack.database_url).begin() as s:
        registry.add_site(s, site, site)
        registry.add_home(s, "h" + site, site)
        for dev, kind in (("gwa-" + site, "gateway"), ("gwb-" + site, "gateway"),
                          ("kid-" + site, "multisensor"), ("other-" + site, "door")):
            _, pw[dev] = registry.add_device(s, dev, site, "h" + site, kind)
        gateways.attach(s, "gwa-" + site, "kid-" + site)
    stack.sync_broker()
    return site, pw


async def test_gateway_writes_its_children_only_and_reads_their_ack(central: Stack) -> None:
    """Gateway A forwards its child's telemetry and event; a forged message for a device
    that is not its child (and its own gateway's neighbour's) never reaches a
    subscriber; A receives its child's ack, not the other device's."""
    site, pw = _setup(central)
    gwa, kid, other = "gwa-" + site, "kid-" + site, "other-" + site
    down: list[Received] = []
    async with watching(central, f"care/v1/{site}/+/+/#") as w, \
            as_user(central, gwa, pw[gwa], down) as gw, \
            as_user(central, "svc-alerts", central.secrets.mqtt["svc-alerts"]) as alerts:
        await gw.subscribe([(f"care/v1/{site}/+/ack", 1), (f"care/v1/{site}/+/cmd/+", 1)])
        await gw.publish(TOPICS.telemetry(site, kid), encode_telemetry(_env(1), {}), qos=1)
        await gw.publish(TOPICS.event(site, kid, "button"), encode_event(_env(2)), qos=1)
        # forged: a registered device of the site that is not A's child
        await gw.publish(TOPICS.event(site, other, "button"), encode_event(_env(3)), qos=1)
        await gw.publish(TOPICS.status(site, other), b'{"state":"ready"}', qos=1)
        await alerts.publish(TOPICS.ack(site, kid), encode_ack(1, 2), qos=1)
        await alerts.publish(TOPICS.ack(site, other), encode_ack(1, 3), qos=1)
        await alerts.publish(TOPICS.cmd(site, kid, "ping"), b"{}", qos=1)
        await eventually(lambda: len(down) >= 2, 5, "the child's ack and cmd")
        await asyncio.sleep(0.5)
        assert sorted(m.topic for m in down) == [TOPICS.ack(site, kid),
                                                 TOPICS.cmd(site, kid, "ping")]
        uplink = [m.topic for m in w.received if "/ack" not in m.topic and "/cmd" not in m.topic]
        assert sorted(uplink) == sorted([TOPICS.telemetry(site, kid),
                                         TOPICS.event(site, kid, "button")])


async def test_child_moved_to_another_gateway_loses_the_old_route_at_once(
        central: Stack) -> None:
    """After the child moves from A to B and the broker reloads, A's publishes for it
    are refused (connected all along) and B's pass; A no longer gets its ack."""
    site, pw = _setup(central)
    gwa, gwb, kid = "gwa-" + site, "gwb-" + site, "kid-" + site
    down_a: list[Received] = []
    async with watching(central, f"care/v1/{site}/{kid}/#") as w, \
            as_user(central, gwa, pw[gwa], down_a) as a, as_user(central, gwb, pw[gwb]) as b, \
            as_user(central, "svc-alerts", central.secrets.mqtt["svc-alerts"]) as alerts:
        await a.subscribe([(f"care/v1/{site}/+/ack", 1)])
        await a.publish(TOPICS.telemetry(site, kid), encode_telemetry(_env(1), {}), qos=1)
        await eventually(lambda: len(w.received) == 1, 5, "A's forward before the move")
        with session_factory(central.database_url).begin() as s:
            gateways.attach(s, gwb, kid)
            acl = render_acl(s, TOPICS)
        central.sync_broker()
        block_a = acl.split(f"user {gwa}\n")[1].split("\n\n")[0]
        assert kid not in block_a and kid in acl.split(f"user {gwb}\n")[1].split("\n\n")[0]
        await asyncio.sleep(0.5)  # SIGHUP applied
        await a.publish(TOPICS.telemetry(site, kid), encode_telemetry(_env(2), {}), qos=1)
        await b.publish(TOPICS.telemetry(site, kid), encode_telemetry(_env(3), {}), qos=1)
        await alerts.publish(TOPICS.ack(site, kid), encode_ack(1, 3), qos=1)
        await eventually(lambda: len(w.received) >= 3, 5, "B's forward and the ack")
        await asyncio.sleep(0.5)
        assert [m.payload for m in w.on("/telemetry")] == [
            encode_telemetry(_env(1), {}), encode_telemetry(_env(3), {})]
        assert down_a == []


def test_attach_refuses_what_is_not_a_gateway_route(central: Stack, tmp_path: Path) -> None:
    """Only a gateway has children; a gateway is nobody's child; same site only."""
    site, _ = _setup(central)
    from dolbom.registry.errors import InvalidInput

    with session_factory(central.database_url).begin() as s:
        for gw, dev in ((f"kid-{site}", f"other-{site}"), (f"gwa-{site}", f"gwb-{site}")):
            with pytest.raises(InvalidInput):
                gateways.attach(s, gw, dev)
        assert [d.id for d in gateways.children_of(s, f"gwa-{site}")] == [f"kid-{site}"]


async def test_running_gateway_loses_a_moved_child_at_the_reload(
        central: Stack, homes: list[Home], tmp_path: Path, runtime_dir: Path) -> None:
    """A real gateway process whose settings still list a child that was moved to another
    gateway: its forwards for that child are refused by the central broker (nothing
    reaches a subscriber), the alarm stays in its queue unacknowledged and its status
    says so (ob.depth), never dropped in silence."""
    dev = "esp32-" + secrets.token_hex(2)
    home = write_home(central, tmp_path, runtime_dir, {dev: "button"}, "http://127.0.0.1:9/")
    homes.append(home)
    with session_factory(central.database_url).begin() as s:
        _, _ = registry.add_device(s, "gwb-" + home.site, home.site, home.home, "gateway")
        gateways.attach(s, "gwb-" + home.site, dev)
    central.sync_broker()
    async with watching(central, f"care/v1/{home.site}/#") as w:
        await _up(home)
        async with home.local_client(dev) as d:
            await d.publish(TOPICS.event(home.site, dev, "button"), encode_event(_env(1)),
                            qos=1)

            def depth() -> object:
                return [p.get("ob", {}).get("depth")  # type: ignore[union-attr]
                        for p in w.payloads(f"gw/{home.gw}/status")]

            await eventually(lambda: 1 in depth(), 10, "the alarm waiting in the status",
                             depth)
        assert not w.on("/event/button")
        assert home.queued() == 1
    assert home.gateway.stop() == 0
