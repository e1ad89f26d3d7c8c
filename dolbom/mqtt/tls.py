"""TLS for MQTT connections (DESIGN.md §2 "Transport security").

Devices, gateways and services reach the broker over TLS ≥ 1.2 with the broker's
certificate checked against the project's CA and its host name; plaintext is for
loopback only. ``client_context`` builds the one ``ssl.SSLContext`` every Dolbom
MQTT connection uses; ``is_loopback`` is the rule's definition of "loopback".
"""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path

LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost", "ip6-loopback"})


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and the name ``localhost``: traffic that never leaves the host.

    Any other name counts as remote, even if it resolves to a loopback address
    today: the rule must not depend on DNS.
    """
    h = host.strip().lower()
    if h in LOOPBACK_NAMES:
        return True
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def client_context(ca_file: Path | None = None, cert_file: Path | None = None,
                   key_file: Path | None = None) -> ssl.SSLContext:
    """A client context: TLS ≥ 1.2, the broker's certificate and host name always checked.

    ``ca_file`` is the PEM of the CA that signed the broker's certificate (``dolbom
    certs init``); without it the system's trust store is used (a broker with a
    public certificate). ``cert_file``/``key_file`` add a client certificate for
    brokers that require one.
    """
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH,
                                     cafile=str(ca_file) if ca_file else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    if cert_file is not None:
        ctx.load_cert_chain(str(cert_file), str(key_file) if key_file else None)
    return ctx
