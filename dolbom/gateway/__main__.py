"""``python -m dolbom.gateway run|provision|setup``: the gateway's commands without the
rest of the ``dolbom`` CLI, which imports every part's command module (what systemd
runs on the Pi: about 40 MB of memory instead of 100 with a full installation)."""

from __future__ import annotations

import argparse
import logging
import sys

from dolbom.gateway.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dolbom.gateway")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    register(sub)
    args = parser.parse_args(["gateway", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
