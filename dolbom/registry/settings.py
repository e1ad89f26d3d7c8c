"""Settings of the registry commands (``DOLBOM_`` environment, see dolbom.example.env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from dolbom.registry.broker_files import BrokerFiles
from dolbom.settings import BaseServiceSettings


def broker_paths_together(pid_file: Path | None, info: ValidationInfo) -> Path | None:
    """``broker_pid_file`` validator of every settings model that writes the broker's files:
    all three paths or none. Declared after ``broker_passwd`` and ``broker_acl`` (field
    order), so the error names one option, as dolbom.settings.load reports it."""
    paths = (info.data.get("broker_passwd"), info.data.get("broker_acl"), pid_file)
    if any(p is None for p in paths) and any(p is not None for p in paths):
        raise ValueError("broker_passwd, broker_acl and broker_pid_file must be set together")
    return pid_file


def broker_files_of(passwd: Path | None, acl: Path | None, pid_file: Path | None,
                    owner: str | None) -> BrokerFiles | None:
    if passwd is None or acl is None or pid_file is None:
        return None
    return BrokerFiles(passwd, acl, pid_file, owner)


class RegistrySettings(BaseServiceSettings):
    # Where the broker reads its users and rights, and whom to SIGHUP after a
    # change. All unset (the default): device add/revoke change the database
    # only and say so; run ``dolbom registry sync-broker`` on the broker host.
    broker_passwd: Path | None = None
    broker_acl: Path | None = None
    broker_pid_file: Path | None = Field(None, validate_default=True)
    broker_owner: str | None = None  # the user mosquitto runs as (files stay readable to it)
    # The broker address written into device configs (``device add --config-out``):
    # devices reach the broker over the LAN, services often over loopback.
    # Default: mqtt.host / mqtt.port.
    device_mqtt_host: str | None = None
    device_mqtt_port: int | None = Field(None, ge=1, le=65535)
    # TLS for devices (DESIGN.md §2): the broker's TLS listener, and the CA whose PEM
    # goes into each device config. Defaults: device_mqtt_host (or mqtt.host), 8883,
    # mqtt.tls.ca_file.
    device_mqtt_tls_host: str | None = None
    device_mqtt_tls_port: int | None = Field(None, ge=1, le=65535)
    device_ca_file: Path | None = None

    _broker_paths = field_validator("broker_pid_file")(broker_paths_together)

    @field_validator("device_ca_file")
    @classmethod
    def _ca_pem(cls, v: Path | None) -> Path | None:
        if v is not None and not v.is_file():
            raise ValueError(f"{v} is not a readable file")
        return v

    @property
    def device_ca(self) -> Path | None:
        """The CA file for device configs: device_ca_file, else the services' own CA."""
        return self.device_ca_file or self.mqtt.tls.ca_file

    @property
    def broker_files(self) -> BrokerFiles | None:
        return broker_files_of(self.broker_passwd, self.broker_acl, self.broker_pid_file,
                               self.broker_owner)
