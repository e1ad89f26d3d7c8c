"""``dolbom dashboards``: build the Grafana dashboards and provisioning files, or push
them to a running Grafana.

    dolbom dashboards build [--out dashboards] [--console-url URL] [--json-path PATH]
    dolbom dashboards deploy --url URL --token TOKEN --influx-url URL --influx-user USER
                             [--influx-db care] [--no-check]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

DEFAULT_OUT = Path("dashboards")
DEFAULT_JSON_PATH = "${DOLBOM_DASHBOARDS_DIR}/json"  # expanded by Grafana
PASSWORD_ENV = "DOLBOM_GRAFANA_INFLUX_PASSWORD"  # noqa: S105 - a variable name


def _build(args: argparse.Namespace) -> int:
    from dolbom.dashboards.build import files, write

    written = write(args.out, files(args.console_url, args.json_path))
    print(f"{len(written)} files written under {args.out}: "
          f"Grafana loads them with GF_PATHS_PROVISIONING={args.out / 'provisioning'}")
    return 0


def _deploy(args: argparse.Namespace) -> int:
    from dolbom.dashboards.deploy import InfluxSource, connect, deploy
    from dolbom.dashboards.errors import DashboardsError
    from dolbom.dashboards.readonly import require_read_only

    password = os.environ.get(PASSWORD_ENV, "")
    src = InfluxSource(args.influx_url, args.influx_db, args.influx_user, password)
    try:
        if not args.no_check:
            require_read_only(src.url, src.user, src.password, src.database)
        saved = deploy(connect(args.url, args.token), src)
    except DashboardsError as e:
        print(f"dashboards deploy: {e}", file=sys.stderr)
        return 1
    print(f"datasource {src.user}@{src.database} and {len(saved)} dashboards pushed to "
          f"{args.url}: {', '.join(saved)}")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from dolbom.dashboards.catalogue import DEFAULT_CONSOLE_URL

    top = subparsers.add_parser(
        "dashboards", help="Grafana dashboards: build the files, or deploy to a Grafana",
        description="Grafana dashboards as code (docs/dashboards.md).")
    sub = top.add_subparsers(dest="dashboards_command", metavar="COMMAND", required=True)
    b = sub.add_parser(
        "build", help="write the dashboards and provisioning files into a folder",
        description="Write json/<dashboard>.json and provisioning/ (datasource and "
                    "dashboard provider) into --out; the same code writes the same bytes.")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"folder to write into ({DEFAULT_OUT})")
    b.add_argument("--console-url", default=DEFAULT_CONSOLE_URL,
                   help=f"the care-worker console, for links ({DEFAULT_CONSOLE_URL})")
    b.add_argument("--json-path", default=DEFAULT_JSON_PATH,
                   help="where Grafana will find json/ (the provider's path; "
                        f"{DEFAULT_JSON_PATH})")
    b.set_defaults(func=_build)
    d = sub.add_parser(
        "deploy", help="push the datasource and dashboards through Grafana's HTTP API",
        description="Create or update the InfluxDB datasource (read-only user, checked "
                    f"first), the Dolbom folder and every dashboard. The InfluxDB "
                    f"password is read from {PASSWORD_ENV}.")
    d.add_argument("--url", required=True, help="Grafana, e.g. https://grafana.example.org")
    d.add_argument("--token", required=True, help="a Grafana service-account token (Editor)")
    d.add_argument("--influx-url", required=True, help="InfluxDB as Grafana reaches it")
    d.add_argument("--influx-db", default="care", help="the database to read (care)")
    d.add_argument("--influx-user", required=True, help="a READ-only InfluxDB user")
    d.add_argument("--no-check", action="store_true",
                   help="skip checking from here that the InfluxDB user is read-only")
    d.set_defaults(func=_deploy)
