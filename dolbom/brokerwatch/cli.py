"""``dolbom broker watch-denials``: follow the broker's log until Ctrl-C or SIGTERM.
``dolbom broker watch-backlog``: follow the broker's ``$SYS`` figures until then.

Settings come from ``DOLBOM_*`` variables (or ``--env-file``), see
``DenialWatchSettings`` and ``BacklogWatchSettings``. A failure at start prints one line
to stderr and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from dolbom.brokerwatch.backlog_watch import BacklogWatch, BacklogWatchSettings
from dolbom.brokerwatch.watch import DenialWatch, DenialWatchSettings
from dolbom.registry.db import error_line, make_engine
from dolbom.registry.models import Device
from dolbom.settings import SettingsError, env_file_parent, load
from dolbom.signals import install_signal_handlers


def _err(msg: str) -> None:
    print(msg, file=sys.stderr)


def _watch_denials(args: argparse.Namespace) -> int:
    """Follow the broker log until Ctrl-C / SIGTERM (docs/broker.md)."""
    try:
        settings = load(DenialWatchSettings, args.env_file)
    except SettingsError as e:
        _err(str(e))
        return 1
    log_file = args.log or settings.denials.log_file
    if log_file is None:
        _err("error: name the broker's log: --log FILE or DOLBOM_DENIALS__LOG_FILE")
        return 1
    if log_file.is_dir():
        _err(f"error: {log_file} is a directory, not the broker's log")
        return 1
    if log_file.exists() and not os.access(log_file, os.R_OK):
        _err(f"error: cannot read {log_file} (mosquitto writes it 0600: run the watcher "
             "as the broker's user)")
        return 1
    d = settings.denials
    return _run_on_registry(
        settings.database_url, lambda factory: DenialWatch(d, log_file, factory),
        f"watching {log_file} for ACL denials: an alert after {d.threshold} within "
        f"{d.window_s:g} s")


def _run_on_registry(database_url: str,
                     make: Callable[[sessionmaker[Session]], DenialWatch | BacklogWatch],
                     banner: str) -> int:
    """Open the registry (it answers and is migrated, or one line now), make the watcher
    on it, say ``banner`` and run it until Ctrl-C / SIGTERM; the exit status."""
    engine = make_engine(database_url)
    try:
        factory = sessionmaker(bind=engine, expire_on_commit=False)
        with factory() as session:
            session.execute(select(Device.id).limit(1))
        watch = make(factory)
        print(banner, flush=True)
        asyncio.run(_until_signal(watch))
    except SQLAlchemyError as e:
        _err(error_line(e))
        return 1
    except OSError as e:
        _err(f"error: {e}")
        return 1
    finally:
        engine.dispose()
    return 0


def _watch_backlog(args: argparse.Namespace) -> int:
    """Follow the broker's $SYS figures until Ctrl-C / SIGTERM (docs/scale.md)."""
    try:
        settings = load(BacklogWatchSettings, args.env_file)
    except SettingsError as e:
        _err(str(e))
        return 1
    if settings.mqtt.username is None:
        _err("error: name the broker account: DOLBOM_MQTT__USERNAME (an operator account, "
             "which may read the broker's $SYS figures) and DOLBOM_MQTT__PASSWORD")
        return 1
    try:
        endpoint = settings.mqtt.endpoint()
    except (OSError, ValueError) as e:
        _err(f"error: MQTT TLS: {e}")
        return 1
    o = settings.backlog
    return _run_on_registry(
        settings.database_url, lambda factory: BacklogWatch(o, endpoint, factory),
        f"watching cell {o.cell}'s broker {endpoint.host}:{endpoint.port}: an alert when it "
        f"holds {o.threshold} messages or more, growing by {o.min_growth} or more for "
        f"{o.sustain_s:g} s")


async def _until_signal(watch: DenialWatch | BacklogWatch) -> None:
    install_signal_handlers(watch.stopping)
    await watch.run()


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    common = env_file_parent()
    brk = subparsers.add_parser("broker", help="the MQTT broker: what its ACL refuses, what "
                                "it holds for absent clients")
    sub = brk.add_subparsers(dest="broker_command", metavar="COMMAND", required=True)
    p = sub.add_parser(
        "watch-denials", parents=[common], help="follow the broker's log: count ACL denials "
        "and raise an acl_denied alert for a device that keeps trying",
        description="Follow the broker's log (written with its denials, see docs/broker.md), "
        "count what the ACL refused in dolbom_broker_acl_denied_total, and raise one "
        "technical acl_denied alert for a device denied DOLBOM_DENIALS__THRESHOLD times "
        "within DOLBOM_DENIALS__WINDOW_S. Runs until Ctrl-C or SIGTERM.")
    p.add_argument("--log", type=Path, metavar="FILE",
                   help="the broker's log file (default: DOLBOM_DENIALS__LOG_FILE)")
    p.set_defaults(func=_watch_denials)
    p = sub.add_parser(
        "watch-backlog", parents=[common], help="follow the broker's $SYS figures: raise a "
        "broker_backlog alert when it holds more and more messages for an absent client",
        description="Subscribe to the broker's $SYS figures (as an operator account: "
        "DOLBOM_MQTT__*), export them as metrics, and raise one technical broker_backlog "
        "alert for the cell (DOLBOM_BACKLOG__CELL) when the messages held for clients stay "
        "at or above DOLBOM_BACKLOG__THRESHOLD and grow by DOLBOM_BACKLOG__MIN_GROWTH or "
        "more for DOLBOM_BACKLOG__SUSTAIN_S (a dead ingest worker's $share); cleared when "
        "they drain below DOLBOM_BACKLOG__CLEAR_BELOW. Runs until Ctrl-C or SIGTERM.")
    p.set_defaults(func=_watch_backlog)
