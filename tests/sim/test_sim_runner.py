"""The shell's pieces without a broker: queue policy, device memory, control socket, CLI."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dolbom.cli import main
from dolbom.settings import MqttSettings
from dolbom.sim import control
from dolbom.sim.engine import DeviceMemory
from dolbom.sim.errors import ControlError, StateError
from dolbom.sim.memory import load_memory, memory_path, save_memory
from dolbom.sim.model import MsgClass, Outgoing
from dolbom.sim.runner import _Runner
from dolbom.sim.settings import SimOptions, SimSettings
from dolbom.sim.stats import SimStats
from tests.sim.sim_helpers import T0, make_plan


def _runner(memory_file: Path | None = None, queue_size: int = 8, homes: int = 1) -> _Runner:
    settings = SimSettings(mqtt=MqttSettings(port=1), sim=SimOptions(queue_size=queue_size))
    return _Runner(make_plan(homes), settings, speed=60.0, stats=SimStats(), control_socket=None,
                   random_incident_rate=0.0, stop=asyncio.Event(), clock=lambda: T0,
                   start_tod_s=0.0, memory_file=memory_file)


def _msg(cls: MsgClass, n: int) -> Outgoing:
    return Outgoing("pir-h001", "t", str(n).encode(), 1, False, cls, cls.value)


def test_full_queue_drops_telemetry_first_and_never_life_safety() -> None:
    """Over its bound a device queue drops oldest telemetry, then status, then events; never LS."""
    r = _runner(queue_size=8)
    r._route([_msg(MsgClass.LIFE_SAFETY, i) for i in range(3)])
    r._route([_msg(MsgClass.EVENT, i) for i in range(2)])
    r._route([_msg(MsgClass.TELEMETRY, i) for i in range(6)])
    q = r.links["pir-h001"].queue
    assert len(q) == 8 and r.stats.dropped == 3
    assert [o.payload for o in q if o.cls is MsgClass.TELEMETRY] == [b"3", b"4", b"5"]
    r._route([_msg(MsgClass.LIFE_SAFETY, i) for i in range(3, 12)])
    assert [o.cls for o in q].count(MsgClass.LIFE_SAFETY) == 12  # the bound yields
    assert len(q) == 12


def test_reconnect_puts_birth_first_and_drops_stale_life_safety_copies() -> None:
    """On link-up the birth and outbox go first; queued life-safety copies are not duplicated."""
    r = _runner()
    link = r.links["btn-h001"]
    r.sim.link_down("btn-h001")
    r.sim.inject("h001", "button", T0)
    link.queue.extend([_msg(MsgClass.LIFE_SAFETY, 1), _msg(MsgClass.TELEMETRY, 2)])
    r._route_first(link, r.sim.link_up("btn-h001", T0 + 1000))
    assert [o.name for o in link.queue] == ["status", "button", "telemetry"]


def test_each_run_is_a_new_boot(tmp_path: Path) -> None:
    """Boot counters persist across runs before anything is sent; each run boots anew."""
    path = memory_path(tmp_path, "s1")
    assert _runner(path).sim.devices["pir-h001"].boot == 1
    assert load_memory(path)["pir-h001"].boot == 1
    assert _runner(path).sim.devices["pir-h001"].boot == 2
    assert load_memory(path)["pir-h001"].boot == 2


def test_memory_round_trip_and_corruption(tmp_path: Path) -> None:
    """Device memory saves and loads; a corrupt file stops start-up instead of reusing boots."""
    path = tmp_path / "m.json"
    mem = {"a": DeviceMemory(3, 55.5), "b": DeviceMemory(1, None)}
    save_memory(path, mem)
    assert load_memory(path) == mem
    assert load_memory(tmp_path / "none.json") == {}
    path.write_text("{")
    with pytest.raises(StateError):
        load_memory(path)


@pytest.fixture()
def short_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="simctl-", dir="/tmp") as d:
        yield Path(d)


async def test_control_socket_answers_and_survives_bad_input(short_dir: Path) -> None:
    """The control socket replies per line, refuses bad JSON without dying, and is 0600."""
    sock = short_dir / "c.sock"
    seen: list[dict[str, object]] = []

    async def handle(cmd: dict[str, object]) -> dict[str, object]:
        seen.append(cmd)
        return {"ok": True}

    ready = asyncio.Event()
    server = asyncio.create_task(control.serve(sock, handle, ready))
    await asyncio.wait_for(ready.wait(), 5)
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    assert await control.send(sock, {"incident": "fall", "home": "h001"}) == {"ok": True}
    reader, writer = await asyncio.open_unix_connection(sock)
    writer.write(b"nonsense\n[1]\n")
    assert json.loads(await asyncio.wait_for(reader.readline(), 5)) == {
        "ok": False, "error": "not JSON"}
    assert not json.loads(await asyncio.wait_for(reader.readline(), 5))["ok"]
    writer.close()
    assert seen == [{"incident": "fall", "home": "h001"}]
    server.cancel()
    with pytest.raises(asyncio.CancelledError):
        await server
    assert not sock.exists()


async def test_control_socket_refuses_to_steal_a_live_one(short_dir: Path) -> None:
    """A second simulator does not take over a socket someone listens on; a stale one is reused."""
    sock = short_dir / "c.sock"
    live = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    live.bind(str(sock))
    live.listen()

    async def handle(cmd: dict[str, object]) -> dict[str, object]:
        return {"ok": True}

    with pytest.raises(ControlError, match="another simulator"):
        await control.serve(sock, handle)
    live.close()  # now stale: the file stays, nobody listens
    assert sock.exists()
    ready = asyncio.Event()
    server = asyncio.create_task(control.serve(sock, handle, ready))
    await asyncio.wait_for(ready.wait(), 5)
    server.cancel()
    with pytest.raises(asyncio.CancelledError):
        await server


async def test_control_send_without_simulator_is_a_clear_error(short_dir: Path) -> None:
    """Injecting with no simulator running fails with ControlError, not a traceback."""
    with pytest.raises(ControlError, match="cannot reach"):
        await control.send(short_dir / "none.sock", {"stats": True}, timeout=1)
    with pytest.raises(ControlError, match="longer than"):
        control.check_socket_path(Path("/" + "x" * 120))


def test_cli_inject_without_simulator_exits_1(short_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """`dolbom sim inject` with nobody listening prints one line and exits 1."""
    rc = main(["sim", "inject", "fall", "--home", "h001", "--socket", str(short_dir / "x.sock")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 1 and len(err) == 1 and err[0].startswith("error: cannot reach")


def test_cli_provision_then_reuse(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """`dolbom sim provision` writes a 0600 plan; run again, it reuses it."""
    monkeypatch.setenv("DOLBOM_DATABASE_URL", f"sqlite:///{tmp_path / 'r.db'}")
    for var in ("DOLBOM_BROKER_PASSWD", "DOLBOM_BROKER_ACL", "DOLBOM_BROKER_PID_FILE"):
        monkeypatch.delenv(var, raising=False)
    plan = tmp_path / "plan.json"
    args = ["sim", "provision", "--site", "demo", "--homes", "2", "--plan", str(plan)]
    assert main(args) == 0
    out = capsys.readouterr()
    assert "2 homes, 12 devices" in out.out and "broker not updated" in out.err
    assert os.stat(plan).st_mode & 0o777 == 0o600
    assert main(args) == 0
    assert "reusing" in capsys.readouterr().out


def test_cli_run_rejects_a_bad_speed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`dolbom sim run --speed 0` stops with one line before connecting anything."""
    from dolbom.sim.plan import save_plan

    save_plan(make_plan(1), tmp_path / "p.json")
    rc = main(["sim", "run", "--plan", str(tmp_path / "p.json"), "--speed", "0"])
    assert rc == 1 and "speed" in capsys.readouterr().err


def test_life_safety_jumps_the_backlog_but_not_the_birth() -> None:
    """A press queued behind telemetry goes right after the birth and earlier presses."""
    r = _runner()
    q = r.links["pir-h001"].queue
    r._route([_msg(MsgClass.STATUS, 0), _msg(MsgClass.LIFE_SAFETY, 1)])
    r._route([_msg(MsgClass.TELEMETRY, i) for i in range(2, 5)])
    r._route([_msg(MsgClass.LIFE_SAFETY, 5)])
    assert [o.payload for o in q] == [b"0", b"1", b"5", b"2", b"3", b"4"]


async def test_control_command_for_every_home() -> None:
    """`"home": "*"` starts the incident in every home; bad commands get a reason."""
    r = _runner(homes=3)
    assert await r._command({"incident": "heat_wave", "home": "*"}) == {"ok": True}
    assert {h for h, _ in r.sim.active_incidents()} == {"h001", "h002", "h003"}
    assert not (await r._command({"incident": "heat_wave"}))["ok"]
    assert not (await r._command({"incident": "nope", "home": "*"}))["ok"]
    stats = await r._command({"stats": True})
    assert stats["ok"] and len(stats["stats"]["incidents"]) == 3
