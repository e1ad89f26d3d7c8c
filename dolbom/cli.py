"""The ``dolbom`` command: one CLI, a subcommand per part of the system.

Each package contributes its commands through a ``register(subparsers)``
function, so the CLI stays thin and a reader finds a command next to the code
it drives.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from dolbom import __version__

# package modules that provide register(subparsers)
_COMMAND_MODULES = (
    "dolbom.stack.cli",
    "dolbom.registry.cli",
    "dolbom.brokerwatch.cli",
    "dolbom.ingest.cli",
    "dolbom.alerts.cli",
    "dolbom.sim.cli",
    "dolbom.bench.cli",
    "dolbom.bench.latency",
    "dolbom.bench.rollups",
    "dolbom.bench.mqttclients",
    "dolbom.bench.brokerauth",
    "dolbom.stack.cells",
    "dolbom.api.cli",
    "dolbom.fwtool.cli",
    "dolbom.demo",
    "dolbom.demo_gateway",
    "dolbom.eval.cli",
    "dolbom.certs.cli",
    "dolbom.gateway.cli",
    "dolbom.dashboards.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dolbom", description="Dolbom: non-contact care for people living alone."
    )
    parser.add_argument("--version", action="version", version=f"dolbom {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("dolbom"):
                continue  # a part not installed in this deployment (e.g. gateway-only)
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        rc = args.func(args)
    except KeyboardInterrupt:
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
