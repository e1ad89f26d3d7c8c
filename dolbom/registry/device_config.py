"""The device config ``dolbom device add --config-out`` writes: the device's broker, its
MQTT password and, for TLS (DESIGN.md §2), the CA; the firmware bundle reads it
(``dolbom.fwtool``).

The broker follows the device's site (docs/scale.md): an explicit ``--broker-host`` /
``--broker-port`` first, else the TLS listener of the site's cell when the cell has a
row in ``cells``, else the settings (``DOLBOM_DEVICE_MQTT_*``, then ``DOLBOM_MQTT__*``),
as before cells had endpoints. A cell's broker is TLS only, so it needs the CA."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from dolbom.mqtt.tls import is_loopback
from dolbom.registry.errors import InvalidInput
from dolbom.registry.models import Cell, Device
from dolbom.registry.settings import RegistrySettings
from dolbom.settings import TLS_PORT


def device_tls(settings: RegistrySettings, broker_host: str, *, tls_host: str | None = None,
               tls_port: int | None = None) -> dict[str, Any]:
    """The TLS part of a device config: the broker's TLS endpoint and the CA's PEM text.

    DESIGN.md §2: devices reach the broker over TLS, with the CA in their config; a
    device config without a CA is for a broker on the device's own loopback only.
    """
    ca_file = settings.device_ca
    if ca_file is None:
        return {}
    try:
        pem = ca_file.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidInput(f"cannot read the CA {ca_file}: {e}") from None
    if "-----BEGIN CERTIFICATE-----" not in pem:
        raise InvalidInput(f"{ca_file} is not a PEM certificate")
    return {
        "tls_host": tls_host or settings.device_mqtt_tls_host or broker_host,
        "tls_port": tls_port or settings.device_mqtt_tls_port or TLS_PORT,
        "ca": pem,
    }


def write_device_config(path: Path, settings: RegistrySettings, device: Device,
                        password: str, *, cell: Cell | None = None,
                        broker_host: str | None = None,
                        broker_port: int | None = None) -> str | None:
    """The device's config (consumed by the firmware bundle), readable by its owner only.

    ``cell``: the endpoints of the device's site's cell (``cells.cell_of_site``), or None;
    ``broker_host`` / ``broker_port``: what the operator gave explicitly, which wins.
    Returns a warning for the operator when the config has no CA for a broker that is
    not loopback (the device would send its password in plaintext)."""
    host = broker_host or (cell.broker_host if cell else None)
    port = broker_port or (cell.broker_port if cell else None)
    tls = device_tls(settings, host or settings.device_mqtt_host or settings.mqtt.host,
                     tls_host=host, tls_port=port)
    if cell is not None and not (broker_host and broker_port) and not tls:
        raise InvalidInput(f"cell {cell.name}'s broker is reached over TLS only: set "
                           "DOLBOM_DEVICE_CA_FILE to the CA of its certificate")
    broker_host = host or settings.device_mqtt_host or settings.mqtt.host
    config = {
        "v": 1,
        "site": device.site_id,
        "device": device.id,
        "kind": device.kind,
        "power": device.power.value,
        "hb": device.hb_s,
        "broker_host": broker_host,
        "broker_port": port or settings.device_mqtt_port or settings.mqtt.port,
        "username": device.id,
        "password": password,
        "topic_prefix": settings.mqtt.topic_prefix,
        **tls,
    }
    try:
        # O_EXCL: never overwrite a file that may hold another device's only password copy.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} already exists; choose another file") from None
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)  # whatever the umask
        json.dump(config, f, indent=2)
        f.write("\n")
    if "ca" not in config and not is_loopback(broker_host):
        return (f"warning: no CA for devices (DOLBOM_DEVICE_CA_FILE): device {device.id} "
                f"would send its password to {broker_host} in plaintext")
    return None
