"""A cell's broker kept in step with the registry (dolbom.registry.broker_sync,
``dolbom registry sync-broker --cell C --watch``): only the cell's devices may connect;
an added device gets in, a revoked one is refused, a site moved into the cell brings
its devices; an unchanged registry writes nothing. Real Mosquitto, bounded waits."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.orm import Session, sessionmaker

from dolbom.mqtt import ConnectRefused
from dolbom.registry import service as svc
from dolbom.registry.broker import render_acl, render_passwd
from dolbom.registry.broker_sync import watch
from dolbom.stack.mosquitto import Mosquitto
from tests.registry.test_registry_broker import T, connect


def _two_cells(factory: sessionmaker[Session]) -> dict[str, str]:
    with factory.begin() as s:
        svc.add_site(s, "sa", "A", cell="a")
        svc.add_site(s, "sb", "B", cell="b")
        svc.add_home(s, "ha", "sa")
        svc.add_home(s, "hb", "sb")
        pw = {dev: svc.add_device(s, dev, site, home, kind)[1]
              for dev, site, home, kind in (("dev-a", "sa", "ha", "multisensor"),
                                            ("dev-b", "sb", "hb", "multisensor"),
                                            ("gw-a", "sa", "ha", "gateway"),
                                            ("gw-b", "sb", "hb", "gateway"))}
        svc.ensure_service_account(s, "ingest", "ingest", "ingest-pw")
    return pw


def test_a_cells_files_name_only_its_devices(sqlite_factory: sessionmaker[Session]) -> None:
    _two_cells(sqlite_factory)
    with sqlite_factory() as s:
        users_a = [line.split(":")[0] for line in render_passwd(s, "a").splitlines()]
        acl_a = render_acl(s, T, "a")
        users_all = [line.split(":")[0] for line in render_passwd(s).splitlines()]
    assert users_a == ["ingest", "dev-a", "gw-a"]
    assert "user gw-a" in acl_a and "gw-b" not in acl_a and "user ingest" in acl_a
    assert sorted(users_all) == ["dev-a", "dev-b", "gw-a", "gw-b", "ingest"]


async def _refused(broker: Mosquitto, user: str, pw: str) -> bool:
    try:
        peer = await connect(broker, user, pw, deadline_s=0)
    except ConnectRefused:
        return True
    await peer.client.disconnect()
    return False


async def test_watching_keeps_the_cells_broker_in_step(
        sqlite_factory: sessionmaker[Session], broker: Mosquitto) -> None:
    pw = _two_cells(sqlite_factory)
    stopping = asyncio.Event()
    task = asyncio.create_task(watch(sqlite_factory, broker.files, T, stopping, cell="a",
                                     every_s=0.05))
    try:
        peer = await connect(broker, "dev-a", pw["dev-a"])  # the first write, at once
        await peer.client.disconnect()
        assert await _refused(broker, "dev-b", pw["dev-b"])  # another cell's device

        files_before = broker.files.passwd.read_bytes()
        await asyncio.sleep(0.5)  # ten looks at an unchanged registry
        assert broker.files.passwd.read_bytes() == files_before

        with sqlite_factory.begin() as s:
            _, new_pw = svc.add_device(s, "new-a", "sa", "ha", "button")
        peer = await connect(broker, "new-a", new_pw)
        await peer.client.disconnect()

        with sqlite_factory.begin() as s:
            svc.revoke_device(s, "new-a")
        for _ in range(100):
            if await _refused(broker, "new-a", new_pw):
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("a revoked device still connects after 5 s")

        with sqlite_factory.begin() as s:
            svc.set_site_cell(s, "sb", "a")
        peer = await connect(broker, "dev-b", pw["dev-b"])
        await peer.client.disconnect()
    finally:
        stopping.set()
        writes = await asyncio.wait_for(task, 10)
    assert writes == 4  # the first, the add, the revocation, the move: nothing else
