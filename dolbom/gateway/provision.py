"""``dolbom gateway provision``: register a gateway and its children, write its files.

Runs where the registry is (the operator's side), never on the Pi. It

* adds the gateway as a device of kind ``gateway`` (its central MQTT user), attaches
  the children (``registry.gateways``: the central ACL then lets the gateway write
  exactly their topics) and re-renders the central broker's files;
* writes, into one directory to copy onto the Pi (``dolbom gateway setup`` installs it):

      gateway.env          the gateway's settings (0600): central broker URL, TLS CA,
                           its credentials, the local account, the children
      local-accounts.env   the local broker's Zigbee2MQTT and Home Assistant accounts
                           (0600), for their own configuration
      ca.crt               the CA the central broker's certificate is checked against
      mosquitto/dolbom.conf  the local broker's config (loopback; a TLS LAN listener
                           when the gateway has a certificate)
      mosquitto/passwd     the local users: the gateway, each child (the same password
                           hash as on the central broker, so device configs keep their
                           password), Zigbee2MQTT
      mosquitto/acl        each child writes only its own topics; the gateway reads
                           them and writes their ``ack``/``cmd``

Passwords are generated here and appear only in ``gateway.env`` (0600).

The central broker follows the gateway's site (docs/scale.md): an explicit host and port
win; else, when the site's cell has a row in ``cells``, that cell's broker at its TLS
listener (TLS switched on in ``gateway.env`` whatever the host); else ``central_host``
is required and the port is 8883.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dolbom.files import write_atomic
from dolbom.protocol import Topics
from dolbom.settings import TLS_PORT

LOCAL_GATEWAY_USER = "dolbom-gateway"
LOCAL_Z2M_USER = "zigbee2mqtt"
LOCAL_HA_USER = "homeassistant"

HEADER = "# Written by dolbom gateway provision: do not edit by hand.\n"

LOCAL_CONF = """\
# Written by dolbom gateway provision. The home's local broker (docs/gateway.md).
per_listener_settings false
allow_anonymous false
password_file {dir}/passwd
acl_file {dir}/acl
listener {port} 127.0.0.1
persistence true
persistence_location {data}/
autosave_interval 10
# The gateway PUBACKs only after its queue commit: allow messages in flight, and keep
# the devices' persistent sessions (the `ack` of an alarm waits for a sleeping node).
max_inflight_messages 0
max_queued_messages 100000
persistent_client_expiration 14d
log_dest syslog
log_type error
log_type warning
log_type notice
"""

LOCAL_TLS = """\
# Sensor nodes on the home's Wi-Fi reach this broker over TLS (DESIGN.md §2), with
# the CA their configs already carry.
listener {tls_port} 0.0.0.0
cafile {dir}/tls/ca.crt
certfile {dir}/tls/server.crt
keyfile {dir}/tls/server.key
tls_version tlsv1.2
"""


@dataclass(frozen=True, slots=True)
class LocalUser:
    name: str
    mqtt_hash: str


def _own(prefix: str, site: str, dev: str, t: Topics) -> list[str]:
    return [f"topic write {t.status(site, dev)}", f"topic write {t.event(site, dev, '+')}",
            f"topic write {t.telemetry(site, dev)}", f"topic read {t.ack(site, dev)}",
            f"topic read {t.cmd(site, dev, '+')}"]


def render_local_passwd(users: Iterable[LocalUser]) -> str:
    return "".join(f"{u.name}:{u.mqtt_hash}\n" for u in users)


def render_local_acl(topics: Topics, site: str, children: Iterable[str], *,
                     z2m_base: str = "zigbee2mqtt", ha_prefix: str = "homeassistant") -> str:
    """The local broker's ACL: the gateway, each child, Zigbee2MQTT, Home Assistant."""
    p = topics.prefix
    blocks = [HEADER.rstrip("\n"), "\n".join([
        f"user {LOCAL_GATEWAY_USER}",
        f"topic read {p}/{site}/#",
        f"topic write {p}/{site}/+/ack",
        f"topic write {p}/{site}/+/cmd/+",
        f"topic read {z2m_base}/#",
        f"topic write {ha_prefix}/#",
    ])]
    blocks += ["\n".join([f"user {c}", *_own(p, site, c, topics)]) for c in sorted(children)]
    blocks.append("\n".join([f"user {LOCAL_Z2M_USER}", f"topic readwrite {z2m_base}/#"]))
    # A family's Home Assistant: reads the discovery and the children's messages only.
    blocks.append("\n".join([f"user {LOCAL_HA_USER}", f"topic read {ha_prefix}/#",
                             f"topic read {p}/{site}/#"]))
    return "\n\n".join(blocks) + "\n"


def render_local_conf(directory: Path, data_dir: Path, port: int = 1883,
                      tls_port: int | None = None) -> str:
    conf = LOCAL_CONF.format(dir=directory, data=data_dir, port=port)
    if tls_port is not None:
        conf += LOCAL_TLS.format(dir=directory, tls_port=tls_port)
    return conf


def render_env(values: dict[str, str]) -> str:
    return HEADER + "".join(f"{k}={v}\n" for k, v in values.items())


@dataclass(frozen=True, slots=True)
class Provisioned:
    out: Path
    env_file: Path
    gateway_password: str  # central
    local_passwords: dict[str, str]  # local users the provisioning created


def provision(database_url: str, out: Path, *, site: str, gateway_id: str,
              home: str | None, children: list[str], central_host: str | None,
              central_port: int | None, ca_file: Path | None, topics: Topics,
              local_port: int = 1883, local_tls_port: int | None = None,
              z2m: dict[str, str] | None = None,
              hb_s: int = 60, data_dir: Path = Path("/var/lib/dolbom-gateway"),
              etc_dir: Path = Path("/etc/dolbom-gateway"),
              ha_discovery: bool = False, ca_dir: Path | None = None,
              lan_hosts: list[str] | None = None) -> Provisioned:
    """Register the gateway (a new one, or new credentials for an existing one) and its
    children, and write the Pi's files into ``out``. Re-running it is safe: children
    are re-attached, the gateway's password is renewed (the old one stops working at
    the broker's next reload). Paths inside the files are where ``dolbom gateway setup``
    installs them on the Pi (``etc_dir``, ``data_dir``)."""
    from dolbom.registry import service
    from dolbom.registry.broker import mosquitto_hash
    from dolbom.registry.cells import cell_of_site
    from dolbom.registry.db import session_factory
    from dolbom.registry.gateways import attach, children_of
    from dolbom.registry.models import Device

    z2m = dict(z2m or {})
    if local_tls_port is not None and (ca_dir is None or not lan_hosts):
        from dolbom.registry.errors import InvalidInput

        raise InvalidInput("a TLS listener on the home network needs the CA directory "
                           "(--ca-dir) and the gateway's addresses there (--lan-host)")
    factory = session_factory(database_url)
    with factory.begin() as s:
        cell = None if central_host and central_port else cell_of_site(s, site)
        if cell is not None:
            central_host = central_host or cell.broker_host
            central_port = central_port or cell.broker_port
        if not central_host:
            from dolbom.registry.errors import InvalidInput

            raise InvalidInput(f"no central broker for site {site!r}: give --central-host, "
                               "or add the endpoints of the site's cell (dolbom cell add)")
        central_port = central_port or TLS_PORT
        gw = s.get(Device, gateway_id)
        if gw is None:
            _, gw_pw = service.add_device(s, gateway_id, site, home, "gateway", hb_s=hb_s)
        else:
            if gw.kind != "gateway" or gw.site_id != site:
                from dolbom.registry.errors import InvalidInput

                raise InvalidInput(f"device {gateway_id!r} exists and is not a gateway of "
                                   f"site {site!r}")
            gw_pw = secrets.token_urlsafe(24)
            gw.mqtt_hash = mosquitto_hash(gw_pw)
            s.flush()
        for c in [*children, *z2m.values()]:
            attach(s, gateway_id, c)
        kids = children_of(s, gateway_id)
        local_users = [LocalUser(d.id, d.mqtt_hash) for d in kids
                       if d.id not in z2m.values()]
        child_ids = [d.id for d in kids]
        kinds = {d.id: d.kind for d in kids}
    local_pw = {LOCAL_GATEWAY_USER: secrets.token_urlsafe(24),
                LOCAL_Z2M_USER: secrets.token_urlsafe(24),
                LOCAL_HA_USER: secrets.token_urlsafe(24)}
    local_users += [LocalUser(n, mosquitto_hash(p)) for n, p in local_pw.items()]

    out.mkdir(parents=True, exist_ok=True)
    mdir = out / "mosquitto"
    mdir.mkdir(exist_ok=True)
    write_atomic(mdir / "passwd", render_local_passwd(local_users).encode())
    write_atomic(mdir / "acl", render_local_acl(topics, site, [
        c for c in child_ids if c not in z2m.values()]).encode(), mode=0o644)
    # The broker's data apart from the gateway's (each service owns its state directory).
    broker_data = data_dir.with_name(data_dir.name + "-mosquitto")
    conf = render_local_conf(etc_dir / "mosquitto", broker_data, local_port,
                             local_tls_port)
    write_atomic(mdir / "dolbom.conf", conf.encode(), mode=0o644)
    if local_tls_port is not None and ca_dir is not None and lan_hosts:
        # The Pi's certificate for the home network, from the CA the nodes already trust.
        from dolbom.certs import CA_CERT, issue_service

        issued = issue_service(ca_dir, f"{gateway_id}-local", lan_hosts)
        for src, name, mode in ((ca_dir / CA_CERT, "ca.crt", 0o644),
                                (issued.cert, "server.crt", 0o644),
                                (issued.key, "server.key", 0o600)):
            write_atomic(mdir / "tls" / name, src.read_bytes(), mode=mode)
    env: dict[str, str] = {
        "DOLBOM_GW_SITE": site,
        "DOLBOM_GW_GATEWAY_ID": gateway_id,
        "DOLBOM_GW_CHILDREN": json.dumps([c for c in child_ids if c not in z2m.values()]),
        "DOLBOM_GW_DATA_DIR": str(data_dir),
        "DOLBOM_GW_STATUS_S": str(hb_s),
        "DOLBOM_GW_CENTRAL__HOST": central_host,
        "DOLBOM_GW_CENTRAL__PORT": str(central_port),
        "DOLBOM_GW_CENTRAL__USERNAME": gateway_id,
        "DOLBOM_GW_CENTRAL__PASSWORD": gw_pw,
        "DOLBOM_GW_CENTRAL__TOPIC_PREFIX": topics.prefix,
        "DOLBOM_GW_LOCAL__HOST": "127.0.0.1",
        "DOLBOM_GW_LOCAL__PORT": str(local_port),
        "DOLBOM_GW_LOCAL__USERNAME": LOCAL_GATEWAY_USER,
        "DOLBOM_GW_LOCAL__PASSWORD": local_pw[LOCAL_GATEWAY_USER],
        "DOLBOM_GW_LOCAL__TOPIC_PREFIX": topics.prefix,
    }
    if cell is not None:
        # A cell's broker is its TLS listener, on loopback too (a one-machine cell).
        env["DOLBOM_GW_CENTRAL__TLS__ENABLED"] = "true"
    if ca_file is not None:
        shutil.copyfile(ca_file, out / "ca.crt")
        env["DOLBOM_GW_CENTRAL__TLS__ENABLED"] = "true"
        env["DOLBOM_GW_CENTRAL__TLS__CA_FILE"] = str(etc_dir / "ca.crt")
    # What each child is, for Home Assistant discovery (off unless ha_discovery).
    env["DOLBOM_GW_DISCOVERY__ENABLED"] = "true" if ha_discovery else "false"
    env["DOLBOM_GW_DISCOVERY__KINDS"] = json.dumps(kinds)
    if z2m:
        env["DOLBOM_GW_Z2M__ENABLED"] = "true"
        env["DOLBOM_GW_Z2M__DEVICES"] = json.dumps(z2m)
    env_file = out / "gateway.env"
    write_atomic(env_file, render_env(env).encode())
    # The other local accounts, for the installer to put into Zigbee2MQTT's and Home
    # Assistant's MQTT settings (0600; the gateway does not need them).
    write_atomic(out / "local-accounts.env", render_env({
        "ZIGBEE2MQTT_MQTT_USER": LOCAL_Z2M_USER,
        "ZIGBEE2MQTT_MQTT_PASSWORD": local_pw[LOCAL_Z2M_USER],
        "HOMEASSISTANT_MQTT_USER": LOCAL_HA_USER,
        "HOMEASSISTANT_MQTT_PASSWORD": local_pw[LOCAL_HA_USER]}).encode())
    return Provisioned(out, env_file, gw_pw, local_pw)
