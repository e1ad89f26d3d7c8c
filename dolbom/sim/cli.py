"""``dolbom sim provision|run|inject|stats``: the care-home simulator from the shell.

    dolbom sim provision --site demo --homes 20 --plan sim-plan.json
    dolbom sim run --plan sim-plan.json --speed 60 --random-incidents 0.5
    dolbom sim inject fall --home h003
    dolbom sim inject recover --home h003

Every failure prints one line to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dolbom.settings import SettingsError, load
from dolbom.sim import control
from dolbom.sim.errors import SimError
from dolbom.sim.incidents import Incident
from dolbom.sim.plan import load_plan
from dolbom.sim.settings import SimSettings
from dolbom.sim.stats import SimStats

STATS_EVERY_S = 10.0
SOCKET_NAME = "sim.sock"


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _command(fn: Callable[[argparse.Namespace, SimSettings], int]
             ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args, load(SimSettings, args.env_file))
        except (SettingsError, SimError) as e:
            _err(f"error: {e}" if isinstance(e, SimError) else str(e))
        except OSError as e:
            _err(f"error: {e}")
        return 1

    return run


def _socket(args: argparse.Namespace, settings: SimSettings) -> Path:
    path: Path | None = args.socket
    return path if path is not None else settings.state_dir() / SOCKET_NAME


# -- provision ---------------------------------------------------------------------


def _provision(args: argparse.Namespace, settings: SimSettings) -> int:
    # The registry is imported here: ``sim run`` and ``sim inject`` do not need
    # SQLAlchemy, so a load-generator host can run without it.
    from sqlalchemy.exc import SQLAlchemyError

    from dolbom.protocol import Topics
    from dolbom.registry.broker import sync_broker
    from dolbom.registry.db import migrate, session_factory
    from dolbom.registry.errors import BrokerNotRunning, RegistryError
    from dolbom.registry.settings import RegistrySettings
    from dolbom.sim.provision import ensure_plan

    reg = load(RegistrySettings, args.env_file)
    try:
        migrate(settings.database_url)
        factory = session_factory(settings.database_url)
        plan, created = ensure_plan(factory, args.site, args.homes, args.seed, args.plan)
        devices = sum(len(h.devices) for h in plan.homes)
        if not created:
            print(f"site {plan.site} already provisioned: reusing {args.plan} "
                  f"({len(plan.homes)} homes, {devices} devices)")
            return 0
        print(f"site {plan.site}: {len(plan.homes)} homes, {devices} devices; "
              f"plan with device passwords written to {args.plan} (mode 0600)")
        files = reg.broker_files
        if files is None:
            _err("warning: broker not updated (DOLBOM_BROKER_PASSWD, DOLBOM_BROKER_ACL and "
                 "DOLBOM_BROKER_PID_FILE are not set); run `dolbom registry sync-broker`")
            return 0
        with factory() as session:
            try:
                sync_broker(session, files, Topics(settings.mqtt.topic_prefix))
                print("broker users and ACL updated")
            except BrokerNotRunning as e:
                _err(f"warning: {e}")
    except RegistryError as e:
        _err(f"error: {e}")
        return 1
    except SQLAlchemyError as e:
        # First line only: a DETAIL line could quote a resident's row.
        first = str(getattr(e, "orig", e) or type(e).__name__).strip().splitlines()[:1]
        _err(f"database error: {first[0] if first else type(e).__name__}")
        return 1
    return 0


# -- run -------------------------------------------------------------------------


def _run(args: argparse.Namespace, settings: SimSettings) -> int:
    from dolbom.sim.runner import run_simulator

    plan = load_plan(args.plan)
    speed = args.speed if args.speed is not None else settings.sim.speed
    if not 0 < speed <= 100_000:
        raise SimError("--speed must be > 0 and at most 100000")
    rate = (args.random_incidents if args.random_incidents is not None
            else settings.sim.random_incident_rate)
    if rate < 0:
        raise SimError("--random-incidents must be >= 0")
    sock = _socket(args, settings)
    control.check_socket_path(sock)
    start_tod = None
    if args.start is not None:
        h, _, m = args.start.partition(":")
        try:
            start_tod = float(int(h) * 3600 + int(m or 0) * 60)
        except ValueError:
            raise SimError("--start must be HH:MM") from None

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        stats = SimStats()
        print(f"simulating site {plan.site}: {len(plan.homes)} homes at {speed:g}x, "
              f"broker {settings.mqtt.host}:{settings.mqtt.port}, control socket {sock}")
        task = asyncio.create_task(
            run_simulator(plan, settings, speed=speed, stats=stats, control_socket=sock,
                          random_incident_rate=rate, stop=stop, start_tod_s=start_tod),
            name="sim",
        )
        while not task.done():
            done, _ = await asyncio.wait({task}, timeout=STATS_EVERY_S)
            if not done and not args.quiet:
                print(stats.snapshot().line(), flush=True)
        await task
        print("stopped: " + stats.snapshot().line())

    asyncio.run(main())
    return 0


# -- inject, stats -----------------------------------------------------------------


def _send(args: argparse.Namespace, settings: SimSettings, cmd: dict[str, Any]
          ) -> dict[str, Any]:
    reply = asyncio.run(control.send(_socket(args, settings), cmd))
    if not reply.get("ok"):
        raise SimError(str(reply.get("error", "the simulator refused the command")))
    return reply


def _inject(args: argparse.Namespace, settings: SimSettings) -> int:
    cmd: dict[str, Any] = {"incident": args.kind, "home": args.home}
    if args.device is not None:
        cmd["device"] = args.device
    _send(args, settings, cmd)
    print(f"{args.kind} injected in home {args.home}")
    return 0


def _stats(args: argparse.Namespace, settings: SimSettings) -> int:
    reply = _send(args, settings, {"stats": True})
    s = reply.get("stats", {})
    for key, value in s.items():
        print(f"{key}: {value}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env-file", type=Path, default=None,
                        help="read DOLBOM_* settings from this file too")
    sock = argparse.ArgumentParser(add_help=False)
    sock.add_argument("--socket", type=Path, default=None,
                      help="control socket (default: <state dir>/sim.sock)")

    top = subparsers.add_parser("sim", help="the care-home simulator")
    sub = top.add_subparsers(dest="sim_command", metavar="COMMAND", required=True)

    p = sub.add_parser("provision", parents=[common],
                       help="add a simulated site to the registry and write its plan")
    p.add_argument("--site", required=True, help="site id (a-z, 0-9, '_', '-')")
    p.add_argument("--homes", type=int, required=True)
    p.add_argument("--plan", type=Path, required=True,
                   help="plan file to write (holds device passwords: mode 0600)")
    p.add_argument("--seed", type=int, default=1, help="residents and routines (1)")
    p.set_defaults(func=_command(_provision))

    p = sub.add_parser("run", parents=[common, sock],
                       help="connect every simulated device and live the routine")
    p.add_argument("--plan", type=Path, required=True)
    p.add_argument("--speed", type=float, default=None,
                   help="routine clock speed-up (default DOLBOM_SIM__SPEED, 60)")
    p.add_argument("--random-incidents", type=float, default=None, metavar="RATE",
                   help="expected random incidents per home per hour (default 0)")
    p.add_argument("--start", default=None, metavar="HH:MM",
                   help="simulated time of day at start (default: local time now)")
    p.add_argument("--quiet", action="store_true", help="no periodic stats line")
    p.set_defaults(func=_command(_run))

    p = sub.add_parser("inject", parents=[common, sock],
                       help="inject an incident into a running simulator")
    p.add_argument("kind", choices=[i.value for i in Incident])
    p.add_argument("--home", required=True, help='home id, or "*" for every home')
    p.add_argument("--device", default=None, help="for device_death: which device")
    p.set_defaults(func=_command(_inject))

    p = sub.add_parser("stats", parents=[common, sock],
                       help="print a running simulator's counters")
    p.set_defaults(func=_command(_stats))

