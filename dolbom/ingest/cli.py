"""``dolbom ingest run``: the ingest service."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from dolbom.settings import load


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("ingest", help="MQTT → InfluxDB ingest service")
    isub = p.add_subparsers(dest="ingest_cmd", required=True)
    run = isub.add_parser("run", help="run the ingest service until SIGTERM/Ctrl-C")
    run.add_argument("--env-file", type=Path, help="settings file (DOLBOM_* variables)")
    run.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from dolbom.ingest.service import Ingest
    from dolbom.ingest.settings import IngestSettings
    from dolbom.signals import install_signal_handlers

    settings = load(IngestSettings, args.env_file)

    async def main() -> None:
        ingest = Ingest(settings)
        install_signal_handlers(ingest.stopping)
        await ingest.run()

    asyncio.run(main())
    return 0
