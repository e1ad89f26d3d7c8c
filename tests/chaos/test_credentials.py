"""MQTT credentials on the stack's broker (TESTPLAN S-01): no anonymous login, no default
password, no credential shared by two devices."""

from __future__ import annotations

import pytest

from dolbom.mqtt import Client, ConnectRefused
from dolbom.registry import service as registry
from dolbom.registry.db import session_factory
from dolbom.stack.stack import SERVICE_ACCOUNTS, Stack

pytestmark = [pytest.mark.chaos, pytest.mark.security, pytest.mark.integration]
# What scanners try first (Mirai's list and the usual MQTT ones), plus the id itself.
DEFAULTS = ["", "mosquitto", "password", "admin", "12345678", "123456", "root", "guest",
            "public", "default", "changeme", "mqtt", "1234", "pass"]


async def test_anonymous_and_default_passwords_are_refused(stack: Stack) -> None:
    """S-01: an anonymous CONNECT, and every device and service account tried with the
    usual default passwords and with its own name, get CONNACK 5 (not authorised); the
    generated passwords do get in (the refusals are not a dead broker); and two devices
    never share a password (each is 192 random bits, stored only as a hash)."""
    with session_factory(stack.database_url).begin() as s:
        registry.add_site(s, "s01", "s01")
        registry.add_home(s, "hs01", "s01")
        pw = {d: registry.add_device(s, d, "s01", "hs01", "multisensor")[1]
              for d in ("ms-s01a", "ms-s01b", "ms-s01c")}
    stack.sync_broker()

    async def refused(user: str | None, password: str | None) -> int:
        with pytest.raises(ConnectRefused) as e:
            await Client("127.0.0.1", stack.mosquitto.port, "probe-s01", username=user,
                         password=password).connect(timeout=3)
        return e.value.code

    assert await refused(None, None) == 5
    users = [*pw, *SERVICE_ACCOUNTS]
    for user in users:
        for guess in [*DEFAULTS, user]:
            assert await refused(user, guess) == 5, (user, guess)
    for dev, password in pw.items():
        async with Client("127.0.0.1", stack.mosquitto.port, dev, username=dev,
                          password=password) as c:
            assert c.connected
    for user, password in stack.secrets.mqtt.items():
        async with Client("127.0.0.1", stack.mosquitto.port, "probe-" + user, username=user,
                          password=password) as c:
            assert c.connected
    assert len(set(pw.values())) == len(pw) and all(len(p) >= 32 for p in pw.values())
    for a in pw:  # one device's password is no other device's
        for b, password in pw.items():
            if a != b:
                assert await refused(a, password) == 5
