"""``dolbom gateway run|provision|setup`` (docs/gateway.md)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from dolbom.settings import TLS_PORT, load


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("gateway", help="the Raspberry Pi gateway: store-and-forward to the "
                       "central broker, Zigbee2MQTT, Home Assistant discovery")
    gsub = p.add_subparsers(dest="gateway_cmd", required=True)

    run = gsub.add_parser("run", help="run the gateway until SIGTERM/Ctrl-C")
    run.add_argument("--env-file", type=Path, help="settings file (DOLBOM_GW_* variables)")
    run.set_defaults(func=_run)

    prov = gsub.add_parser(
        "provision", help="register a gateway and its children in the registry and write "
        "its files (gateway.env, local broker config) into a directory for the Pi")
    prov.add_argument("--env-file", type=Path, help="registry settings (DOLBOM_* variables)")
    prov.add_argument("--site", required=True)
    prov.add_argument("--gateway", required=True, help="the gateway's device id")
    prov.add_argument("--home", help="the home the gateway is in")
    prov.add_argument("--child", action="append", default=[],
                      help="a child device id (repeat); it must be registered")
    prov.add_argument("--z2m", action="append", default=[], metavar="NAME=DEVICE",
                      help="a Zigbee2MQTT friendly name and its child device id (repeat)")
    prov.add_argument("--central-host",
                      help="the central broker's host name, as in its certificate (default: "
                      "the broker of the site's cell, `dolbom cell add`)")
    prov.add_argument("--central-port", type=int,
                      help=f"its TLS port (default: the cell's, else {TLS_PORT})")
    prov.add_argument("--ca-file", type=Path, help="the CA of the central broker's "
                      "certificate (default: the system trust store)")
    prov.add_argument("--local-tls-port", type=int,
                      help="a TLS listener on the home network for Wi-Fi sensor nodes "
                      "(with --ca-dir and --lan-host)")
    prov.add_argument("--ca-dir", type=Path,
                      help="the project's CA directory (`dolbom certs init`): issues the "
                      "gateway's certificate for its TLS listener")
    prov.add_argument("--lan-host", action="append", default=[],
                      help="an address or name of the gateway on the home network (repeat)")
    prov.add_argument("--hb", type=int, default=60, help="the gateway's heartbeat, s")
    prov.add_argument("--ha-discovery", action="store_true",
                      help="publish Home Assistant MQTT discovery on the local broker")
    prov.add_argument("--out", type=Path, required=True, help="directory to write")
    prov.set_defaults(func=_provision)

    setup = gsub.add_parser(
        "setup", help="install a provisioned gateway on Raspberry Pi OS as systemd units "
        "(local Mosquitto + gateway, Restart=always); idempotent")
    setup.add_argument("--from", dest="source", type=Path, required=True,
                       help="the directory `dolbom gateway provision` wrote")
    setup.add_argument("--root", type=Path, default=Path("/"),
                       help="install under this root (tests, images); default /")
    setup.add_argument("--no-systemctl", action="store_true",
                       help="write the files only; do not run systemctl")
    setup.set_defaults(func=_setup)


def _run(args: argparse.Namespace) -> int:
    from dolbom.gateway.errors import GatewayError
    from dolbom.gateway.service import Gateway
    from dolbom.gateway.settings import GatewaySettings
    from dolbom.gateway.z2m import attach_bridges
    from dolbom.signals import install_signal_handlers

    settings = load(GatewaySettings, args.env_file)

    async def main() -> None:
        gw = Gateway(settings)
        attach_bridges(gw)
        install_signal_handlers(gw.stopping)
        await gw.run()

    try:
        asyncio.run(main())
    except GatewayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


def _provision(args: argparse.Namespace) -> int:
    from dolbom.certs import CertError
    from dolbom.gateway.provision import provision
    from dolbom.protocol import Topics
    from dolbom.registry.broker import sync_broker
    from dolbom.registry.db import session_factory
    from dolbom.registry.errors import BrokerNotRunning, RegistryError
    from dolbom.registry.settings import RegistrySettings

    settings = load(RegistrySettings, args.env_file)
    z2m: dict[str, str] = {}
    for spec in args.z2m:
        name, sep, dev = spec.rpartition("=")
        if not sep or not name:
            print(f"error: --z2m {spec!r} is not NAME=DEVICE", file=sys.stderr)
            return 1
        z2m[name] = dev
    topics = Topics(settings.mqtt.topic_prefix)
    try:
        p = provision(settings.database_url, args.out, site=args.site,
                      gateway_id=args.gateway, home=args.home, children=args.child,
                      central_host=args.central_host, central_port=args.central_port,
                      ca_file=args.ca_file, topics=topics,
                      local_tls_port=args.local_tls_port, z2m=z2m, hb_s=args.hb,
                      ha_discovery=args.ha_discovery, ca_dir=args.ca_dir,
                      lan_hosts=args.lan_host)
        files = settings.broker_files
        if files is None:
            print("warning: central broker not updated (DOLBOM_BROKER_* not set); run "
                  "`dolbom registry sync-broker`", file=sys.stderr)
        else:
            with session_factory(settings.database_url)() as s:
                try:
                    sync_broker(s, files, topics)
                except BrokerNotRunning as e:
                    print(f"warning: {e}", file=sys.stderr)
    except (RegistryError, CertError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"gateway": args.gateway, "out": str(p.out),
                      "env_file": str(p.env_file)}))
    return 0


def _setup(args: argparse.Namespace) -> int:
    from dolbom.gateway.errors import SetupError
    from dolbom.gateway.setup import setup

    try:
        changed = setup(args.source, args.root, systemctl=not args.no_systemctl)
    except SetupError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for path in changed:
        print(f"wrote {path}")
    if not changed:
        print("already installed: nothing changed")
    return 0
