"""Registry commands: ``dolbom registry|site|cell|home|resident|device|deadletters ...``.

Settings come from ``DOLBOM_*`` variables (or ``--env-file``), see
``RegistrySettings``. Every failure prints one line to stderr and exits 1.
Output names ids only: what an operator typed about a resident is not echoed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dolbom.protocol import Topics
from dolbom.registry import cells, cells_cli, service
from dolbom.registry.broker import sync_broker
from dolbom.registry.broker_files import BrokerFiles
from dolbom.registry.db import error_line, make_engine, migrate
from dolbom.registry.device_config import write_device_config
from dolbom.registry.errors import BrokerNotRunning, InvalidInput, RegistryError
from dolbom.registry.models import DEFAULT_CELL, DEVICE_KINDS
from dolbom.registry.settings import RegistrySettings
from dolbom.settings import SettingsError, env_file_parent, load

Handler = Callable[[argparse.Namespace, RegistrySettings], int]


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _command(fn: Handler) -> Callable[[argparse.Namespace], int]:
    """Load settings, run ``fn``, and turn every expected failure into one line + exit 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args, load(RegistrySettings, args.env_file))
        except SettingsError as e:
            _err(str(e))
        except RegistryError as e:
            _err(f"error: {e}")
        except SQLAlchemyError as e:
            _err(error_line(e))
        except OSError as e:
            _err(f"error: {e}")
        return 1

    return run


@contextmanager
def _sessions(settings: RegistrySettings) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(settings.database_url)
    try:
        yield sessionmaker(bind=engine, expire_on_commit=False)
    finally:
        engine.dispose()


def _update_broker(factory: sessionmaker[Session], settings: RegistrySettings) -> None:
    """After a committed device change: rewrite the broker files and reload, if configured."""
    files = settings.broker_files
    if files is None:
        _err("warning: broker not updated (DOLBOM_BROKER_PASSWD, DOLBOM_BROKER_ACL and "
             "DOLBOM_BROKER_PID_FILE are not set); run `dolbom registry sync-broker` with them")
        return
    with factory() as session:
        try:
            sync_broker(session, files, Topics(settings.mqtt.topic_prefix))
        except BrokerNotRunning as e:
            _err(f"warning: {e}")


# -- registry --------------------------------------------------------------------


def _migrate(args: argparse.Namespace, settings: RegistrySettings) -> int:
    migrate(settings.database_url)
    url = make_url(settings.database_url).render_as_string(hide_password=True)
    print(f"registry schema is up to date: {url}")
    return 0


def _sync_broker(args: argparse.Namespace, settings: RegistrySettings) -> int:
    files = settings.broker_files
    if files is None:
        raise InvalidInput("set DOLBOM_BROKER_PASSWD, DOLBOM_BROKER_ACL and "
                           "DOLBOM_BROKER_PID_FILE to the broker's files")
    topics = Topics(settings.mqtt.topic_prefix)
    if args.watch:
        return _watch_broker(settings, files, topics, args.cell, args.every)
    with _sessions(settings) as factory, factory() as session:
        sync_broker(session, files, topics, reload=args.reload, cell=args.cell)
    print(f"broker files written: {files.passwd}, {files.acl}"
          + (f" (cell {args.cell})" if args.cell else "")
          + ("; broker reloaded" if args.reload else ""))
    return 0


def _watch_broker(settings: RegistrySettings, files: BrokerFiles, topics: Topics,
                  cell: str | None, every_s: float) -> int:
    import asyncio

    from dolbom.registry.broker_sync import watch
    from dolbom.signals import install_signal_handlers

    async def run() -> int:
        stopping = asyncio.Event()
        install_signal_handlers(stopping)
        with _sessions(settings) as factory:
            return await watch(factory, files, topics, stopping, cell=cell, every_s=every_s)

    print(f"keeping {files.passwd} and {files.acl} in step with the registry"
          + (f" for cell {cell}" if cell else "") + "; Ctrl-C stops", flush=True)
    asyncio.run(run())
    return 0


# -- sites, homes, residents -------------------------------------------------------


def _site_add(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory.begin() as session:
        service.add_site(session, args.id, args.name, args.cell)
    print(f"site {args.id} added (cell {args.cell})")
    return 0


def _site_cell(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory.begin() as session:
        service.set_site_cell(session, args.id, args.cell)
    print(f"site {args.id} is now served by cell {args.cell}")
    return 0


def _home_add(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory.begin() as session:
        service.add_home(session, args.id, args.site, args.label)
    print(f"home {args.id} added to site {args.site}")
    return 0


def _home_mode(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory.begin() as session:
        service.set_home_mode(session, args.id, args.mode, args.reason)
    print(f"home {args.id} is now in {args.mode} mode")
    return 0


def _resident_set(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory.begin() as session:
        service.set_resident_setting(session, args.id, args.key, args.value)
    print(f"resident {args.id}: {args.key} = {args.value:g}")
    return 0


def _user_add(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory.begin() as session:
        service.add_user(session, args.username, args.role, display_name=args.name,
                         site_id=args.site, locale=args.locale)
    print(f"user {args.username} added ({args.role})")
    return 0


def _user_contact(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory.begin() as session:
        c = service.add_contact(session, args.username, args.channel, args.address,
                                position=args.position)
        pos = c.position
    print(f"user {args.username}: {args.channel} contact at position {pos}")
    return 0


def _assign(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory.begin() as session:
        if args.remove:
            service.unassign(session, args.username, args.resident)
        else:
            service.assign(session, args.username, args.resident)
    verb = "no longer looks after" if args.remove else "looks after"
    print(f"{args.username} {verb} resident {args.resident}")
    return 0


def _resident_add(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory.begin() as session:
        r = service.add_resident(session, args.home, args.name, phone=args.phone,
                                 address=args.address, birth_year=args.birth_year,
                                 wandering=args.wandering)
        rid = r.id
    print(f"resident {rid} added to home {args.home}")
    return 0


# -- devices ---------------------------------------------------------------------


def _device_add(args: argparse.Namespace, settings: RegistrySettings) -> int:
    warning = None
    if args.config_out is None and (args.broker_host or args.broker_port):
        raise InvalidInput("--broker-host and --broker-port go into a device config: "
                           "give --config-out FILE")
    with _sessions(settings) as factory:
        with factory.begin() as session:
            device, password = service.add_device(session, args.id, args.site, args.home,
                                                  args.kind, power=args.power, hb_s=args.hb)
            if args.config_out is not None:
                # Inside the transaction: if the file cannot be written, no device
                # exists whose password nobody has.
                warning = write_device_config(
                    args.config_out, settings, device, password,
                    cell=cells.cell_of_site(session, device.site_id),
                    broker_host=args.broker_host, broker_port=args.broker_port)
        print(f"device {device.id} added (site {device.site_id}, home {device.home_id or '-'}, "
              f"{device.kind}, {device.power.value}, heartbeat {device.hb_s} s)")
        if args.config_out is not None:
            print(f"device config with its MQTT password written to {args.config_out}")
            if warning:
                _err(warning)
        else:
            print(f"MQTT user: {device.id}")
            print(f"MQTT password (shown once): {password}")
        _update_broker(factory, settings)
    return 0


def _device_revoke(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory:
        with factory.begin() as session:
            device = service.revoke_device(session, args.id)
        print(f"device {device.id} revoked at {device.revoked_at:%Y-%m-%d %H:%M:%S} UTC")
        _update_broker(factory, settings)
    return 0


def _fmt_time(value: object) -> str:
    return "-" if value is None else f"{value:%Y-%m-%d %H:%M:%S}"


def _device_list(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory() as session:
        devices = service.list_devices(session, include_revoked=args.all)
    rows: list[tuple[str, ...]] = [("DEVICE", "SITE", "HOME", "KIND", "POWER", "HB", "STATE",
                                    "LAST SEEN (UTC)", "REVOKED (UTC)")]
    rows += [(d.id, d.site_id, d.home_id or "-", d.kind, d.power.value, str(d.hb_s),
              d.last_state or "-", _fmt_time(d.last_seen_at), _fmt_time(d.revoked_at))
             for d in devices]
    _table(rows)
    return 0


def _deadletters_list(args: argparse.Namespace, settings: RegistrySettings) -> int:
    with _sessions(settings) as factory, factory() as session:
        letters = service.list_dead_letters(session, limit=args.limit, reason=args.reason)
    # The payload is not shown: it is health data (STYLE.md, Errors). Its size is.
    rows: list[tuple[str, ...]] = [
        ("RECEIVED (UTC)", "REASON", "DEVICE", "TOPIC", "BYTES", "DETAIL")
    ]
    rows += [(_fmt_time(x.received_at), x.reason, x.device or "-", x.topic, str(len(x.payload)),
              x.detail) for x in letters]
    _table(rows)
    return 0


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# -- parser ----------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = env_file_parent()

    def group(name: str, help_: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
        p = subparsers.add_parser(name, help=help_)
        return p.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)

    def leaf(sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help_: str,
             fn: Handler) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help_, description=help_)
        p.set_defaults(func=_command(fn))
        return p

    reg = group("registry", "the registry database and the broker files derived from it")
    leaf(reg, "migrate", "create or upgrade the registry schema", _migrate)
    p = leaf(reg, "sync-broker", "rewrite the broker's password and ACL files and reload it",
             _sync_broker)
    p.add_argument("--no-reload", dest="reload", action="store_false",
                   help="write the files only (the broker is not running)")
    p.add_argument("--cell", help="only the devices of this cell's sites (a cell's broker; "
                   "docs/scale.md)")
    p.add_argument("--watch", action="store_true",
                   help="keep running on the broker's machine: write and reload whenever "
                   "the registry's devices change")
    p.add_argument("--every", type=float, default=1.0,
                   help="with --watch: seconds between looks at the registry (default 1)")

    sites = group("site", "care centres and facilities")
    p = leaf(sites, "add", "add a site", _site_add)
    p.add_argument("id", help="site id (a-z, 0-9, '_', '-')")
    p.add_argument("--name", required=True)
    p.add_argument("--cell", default=DEFAULT_CELL,
                   help="the cell that serves it (docs/scale.md; default %(default)s)")
    p = leaf(sites, "cell", "move a site to another cell (its alert services take its homes)",
             _site_cell)
    p.add_argument("id")
    p.add_argument("cell")
    cells_cli.register(group("cell", "each cell's broker and InfluxDB (docs/scale.md)"), leaf)

    homes = group("home", "homes (opaque ids, no addresses)")
    p = leaf(homes, "add", "add a home", _home_add)
    p.add_argument("id", help="home id (a-z, 0-9, '_', '-')")
    p.add_argument("--site", required=True)
    p.add_argument("--label", default="", help="an opaque code, e.g. a case number")
    p = leaf(homes, "mode", "away / hospital mode suppresses welfare alerts (or back to normal)",
             _home_mode)
    p.add_argument("id")
    p.add_argument("mode", choices=["normal", "away", "hospital"])
    p.add_argument("--reason", default="", help="why (required for away and hospital)")

    residents = group("resident", "residents (personal data)")
    p = leaf(residents, "set", "set a per-resident rule threshold, e.g. inactivity_caution_h 8",
             _resident_set)
    p.add_argument("id", type=int)
    p.add_argument("key")
    p.add_argument("value", type=float)

    users = group("user", "people: care workers, supervisors, responders, admins")
    p = leaf(users, "add", "add a person", _user_add)
    p.add_argument("username")
    p.add_argument("--role", required=True,
                   choices=["admin", "supervisor", "care_worker", "responder"])
    p.add_argument("--site", help="their site (required for supervisors)")
    p.add_argument("--name", help="display name")
    p.add_argument("--locale", default="ko", choices=["ko", "en"])
    p = leaf(users, "contact", "add a way to reach a person (the next one is the fallback)",
             _user_contact)
    p.add_argument("username")
    p.add_argument("--channel", required=True, choices=["webhook", "ntfy", "email", "apprise"])
    p.add_argument("--address", required=True, help="URL, ntfy topic, e-mail or Apprise URL")
    p.add_argument("--position", type=int, help="order of preference (0 first)")

    p = leaf(group("assignment", "which care worker looks after which resident"), "add",
             "assign a care worker to a resident", _assign)
    p.add_argument("username")
    p.add_argument("--resident", type=int, required=True)
    p.add_argument("--remove", action="store_true", help="end the assignment instead")

    p = leaf(residents, "add", "add a resident to a home",
             _resident_add)
    p.add_argument("--home", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--phone")
    p.add_argument("--address")
    p.add_argument("--birth-year", type=int)
    p.add_argument("--wandering", action="store_true",
                   help="raise an alert when the resident leaves at night")

    dev = group("device", "sensor nodes and gateways, and their MQTT credentials")
    p = leaf(dev, "add", "provision a device; prints its MQTT password once", _device_add)
    p.add_argument("id", help="device id, also its MQTT user name")
    p.add_argument("--site", required=True)
    p.add_argument("--home")
    p.add_argument("--kind", required=True, choices=sorted(DEVICE_KINDS))
    p.add_argument("--power", default="mains", choices=["mains", "battery"])
    p.add_argument("--hb", type=int, default=60, help="heartbeat interval in seconds (60)")
    p.add_argument("--config-out", type=Path, metavar="FILE",
                   help="write the device config (with the password) to FILE, mode 0600, "
                        "instead of printing the password")
    p.add_argument("--broker-host", help="with --config-out: the broker the device reaches "
                   "(default: its site's cell's, else DOLBOM_DEVICE_MQTT_*)")
    p.add_argument("--broker-port", type=int, help="with --config-out: that broker's port")
    p = leaf(dev, "revoke", "revoke a device and lock it out of the broker", _device_revoke)
    p.add_argument("id")
    p = leaf(dev, "list", "list devices", _device_list)
    p.add_argument("--all", action="store_true", help="include revoked devices")

    p = leaf(group("deadletters", "messages rejected by ingest"), "list",
             "list the newest dead letters", _deadletters_list)
    p.add_argument("--reason", help="only this reason, e.g. not_json")
    p.add_argument("--limit", type=int, default=50)
