"""``dolbom certs init|service|device|revoke|crl``: the local CA for the broker's TLS.

Every failure prints one line to stderr and exits 1. Keys are written 0600; a
service key can be given to the user its server runs as (``--owner mosquitto``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from dolbom.certs.ca import (
    CA_DAYS,
    CRL_DAYS,
    LEAF_DAYS,
    Issued,
    init_ca,
    issue_device,
    issue_service,
    revoke_device,
    revoked_serials,
    write_crl,
)
from dolbom.certs.errors import CertError

DEFAULT_HOSTS = ("127.0.0.1", "localhost")


def _report(what: str, issued: Issued) -> None:
    verb = "written" if issued.created else "kept (exists and still fits; --force to replace)"
    print(f"{what} {verb}: {issued.cert} (key {issued.key})")


def _init(args: argparse.Namespace) -> int:
    _report("CA", init_ca(args.dir, name=args.name, days=args.days, force=args.force))
    return 0


def _service(args: argparse.Namespace) -> int:
    hosts = args.host or list(DEFAULT_HOSTS)
    issued = issue_service(args.dir, args.name, hosts, days=args.days, force=args.force,
                           owner=args.owner)
    _report(f"certificate for {args.name} ({', '.join(hosts)})", issued)
    return 0


def _device(args: argparse.Namespace) -> int:
    issued = issue_device(args.dir, args.id, days=args.days, force=args.force)
    _report(f"client certificate for {args.id}", issued)
    return 0


def _revoke(args: argparse.Namespace) -> int:
    path = revoke_device(args.dir, args.id, days=args.days)
    print(f"client certificate for {args.id} revoked: {path} "
          f"({len(revoked_serials(args.dir))} revoked); give it to the broker (crlfile) "
          "and reload it")
    return 0


def _crl(args: argparse.Namespace) -> int:
    path = write_crl(args.dir, days=args.days)
    print(f"revocation list written: {path} ({len(revoked_serials(args.dir))} revoked, "
          f"valid {args.days} days); give it to the broker (crlfile) and reload it")
    return 0


def _command(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return fn(args)
        except CertError as e:
            print(f"error: {e}", file=sys.stderr)
        except OSError as e:
            print(f"error: {e.strerror or e}: {e.filename or args.dir}", file=sys.stderr)
        return 1

    return run


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "certs", help="a local CA and certificates for the broker's TLS",
        description="Make a local CA and the certificates signed by it (TLS >= 1.2 to the "
                    "broker). Safe to re-run: existing files are kept unless --force.")
    sub = p.add_subparsers(dest="certs_command", metavar="COMMAND", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dir", type=Path, required=True,
                        help="the CA directory (ca.crt, ca.key, services/, devices/)")
    common.add_argument("--force", action="store_true",
                        help="replace existing files (a new CA invalidates every certificate)")

    c = sub.add_parser("init", parents=[common], help="make the CA (key 0600, certificate)",
                       description="Make the CA: ca.key (0600) and ca.crt. An existing CA is "
                                   "kept unless --force.")
    c.add_argument("--name", default="Dolbom local CA", help="the CA's common name")
    c.add_argument("--days", type=int, default=CA_DAYS, help=f"validity (default {CA_DAYS})")
    c.set_defaults(func=_command(_init))

    c = sub.add_parser("service", parents=[common],
                       help="a server certificate, e.g. for the broker",
                       description="A server certificate signed by the CA, written to "
                                   "services/NAME.crt and services/NAME.key (0600).")
    c.add_argument("name", help="the service, e.g. mosquitto")
    c.add_argument("--host", action="append", metavar="H",
                   help="an IP address or DNS name clients connect to (repeat; default "
                        f"{' and '.join(DEFAULT_HOSTS)})")
    c.add_argument("--owner", default=None,
                   help="the user the service runs as: its key is then owned by it, 0600")
    c.add_argument("--days", type=int, default=LEAF_DAYS, help=f"validity (default {LEAF_DAYS})")
    c.set_defaults(func=_command(_service))

    c = sub.add_parser("device", parents=[common], help="an optional client certificate",
                       description="A client certificate for a device (common name = the "
                                   "device id), for a broker that requires client "
                                   "certificates: devices/ID.crt and devices/ID.key (0600).")
    c.add_argument("id", help="the device id, e.g. esp32-a1b2c3")
    c.add_argument("--days", type=int, default=LEAF_DAYS, help=f"validity (default {LEAF_DAYS})")
    c.set_defaults(func=_command(_device))

    # --force means nothing to these two; they take only --dir.
    crl_common = argparse.ArgumentParser(add_help=False)
    crl_common.add_argument("--dir", type=Path, required=True, help="the CA directory")
    crl_common.add_argument("--days", type=int, default=CRL_DAYS,
                            help=f"the list's validity (default {CRL_DAYS}); a broker with "
                                 "an expired list refuses every client certificate")
    c = sub.add_parser("revoke", parents=[crl_common], help="revoke a device's certificate",
                       description="Revoke devices/ID.crt: its serial goes into the CA's "
                                   "revocation list ca.crl (re-signed), which a broker "
                                   "requiring client certificates reads (crlfile). The "
                                   "next `certs device ID` issues a new certificate.")
    c.add_argument("id", help="the device id, e.g. esp32-a1b2c3")
    c.set_defaults(func=_command(_revoke))

    c = sub.add_parser("crl", parents=[crl_common], help="(re)write the revocation list",
                       description="Re-sign the CA's revocation list ca.crl (empty if "
                                   "nothing was revoked) with a new validity: run it "
                                   "before the list expires, and once before a broker "
                                   "first requires client certificates.")
    c.set_defaults(func=_command(_crl))
