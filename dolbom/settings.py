"""Settings shared by Dolbom's services (pydantic-settings, ``DOLBOM_`` env prefix).

Each service has one settings model, loaded once at start-up by ``load`` and
passed down; nothing reads the environment at import time. Every option, with
its default, is listed in ``dolbom.example.env``. A bad setting stops start-up
with one clear line (``SettingsError``).
"""

from __future__ import annotations

import argparse
import base64
import ssl
import urllib.parse
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from dolbom.mqtt.session import Endpoint
from dolbom.mqtt.tls import client_context, is_loopback
from dolbom.protocol import DEFAULT_PREFIX, Topics

S = TypeVar("S", bound=BaseSettings)


class SettingsError(SystemExit):
    """Raised (as a clean exit with one line) when configuration is invalid."""


class MqttTlsSettings(BaseModel):
    """TLS to the broker (DESIGN.md §2): on by default for a broker that is not loopback."""

    # None: TLS exactly when the broker is not loopback. true/false: always/never
    # (never + credentials + a remote broker is refused at start-up).
    enabled: bool | None = None
    # PEM of the CA that signed the broker's certificate (``dolbom certs init``);
    # unset: the system trust store (a broker with a public certificate).
    ca_file: Path | None = None
    # A client certificate, for a broker that requires one (``dolbom certs device``).
    cert_file: Path | None = None
    key_file: Path | None = None
    # The name the broker's certificate must carry; unset: the host connected to.
    server_hostname: str | None = None

    @model_validator(mode="after")
    def _files(self) -> MqttTlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls.cert_file and tls.key_file must be set together")
        for name in ("ca_file", "cert_file", "key_file"):
            path: Path | None = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"tls.{name} {path} is not a readable file")
        return self


TLS_PORT = 8883  # IANA "secure-mqtt"


class MqttSettings(BaseModel):
    host: str = "127.0.0.1"
    # Default 1883, or 8883 when TLS is on.
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    topic_prefix: str = DEFAULT_PREFIX
    keepalive: int = Field(30, ge=5, le=300)
    tls: MqttTlsSettings = MqttTlsSettings()

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        Topics(v)  # raises ValueError with the reason
        return v.strip("/")

    @model_validator(mode="after")
    def _transport(self) -> MqttSettings:
        """Plaintext only on loopback (DESIGN.md §2): never send credentials in clear."""
        if self.use_tls:
            if "port" not in self.model_fields_set:
                self.port = TLS_PORT
        elif (self.username or self.password) and not is_loopback(self.host):
            raise ValueError(
                f"MQTT credentials would cross the network in plaintext to {self.host} "
                "(not loopback): use TLS (unset DOLBOM_MQTT__TLS__ENABLED=false, set "
                "DOLBOM_MQTT__TLS__CA_FILE)")
        return self

    @property
    def use_tls(self) -> bool:
        if self.tls.enabled is None:
            return not is_loopback(self.host)
        return self.tls.enabled

    def ssl_context(self) -> ssl.SSLContext | None:
        """The context for ``dolbom.mqtt.Client(ssl=...)``; None for plaintext (loopback)."""
        if not self.use_tls:
            return None
        t = self.tls
        return client_context(t.ca_file, t.cert_file, t.key_file)

    def endpoint(self) -> Endpoint:
        """Where ``dolbom.mqtt.MqttSession`` connects, as whom, over TLS when on (the CA and
        key files are read here, once: a bad file stops start-up)."""
        return Endpoint(self.host, self.port, self.username,
                        self.password.get_secret_value() if self.password else None,
                        self.keepalive, self.ssl_context(), self.tls.server_hostname)


class InfluxSettings(BaseModel):
    url: str = "http://127.0.0.1:8086"
    database: str = "care"
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _transport(self) -> InfluxSettings:
        """Plaintext only on loopback (DESIGN.md §2): InfluxDB's Basic auth would send the
        user and password in clear over http:// to another machine."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"InfluxDB URL {self.url!r} is not http(s)://HOST[:PORT]")
        if (parts.scheme == "http" and (self.username or self.password)
                and not is_loopback(parts.hostname)):
            raise ValueError(
                f"InfluxDB credentials would cross the network in plaintext to "
                f"{parts.hostname} (not loopback): use an https:// URL")
        return self

    def auth_headers(self) -> dict[str, str]:
        """HTTP Basic auth: InfluxDB 1.x, and the v1 API of 2.x/3.x (a token as password)."""
        if not self.username:
            return {}
        pw = self.password.get_secret_value() if self.password else ""
        token = base64.b64encode(f"{self.username}:{pw}".encode()).decode()
        return {"Authorization": f"Basic {token}"}


class BaseServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOLBOM_", env_nested_delimiter="__", env_file=None, extra="ignore",
        env_ignore_empty=True,  # `DOLBOM_X=` means "the default", as in dolbom.example.env
    )
    database_url: str = "sqlite:///dolbom.db"
    mqtt: MqttSettings = MqttSettings()


def load(cls: type[S], env_file: Path | None = None, **overrides: Any) -> S:
    """Load settings, turning validation errors into one line that names the option."""
    try:
        if env_file is not None:
            if not env_file.is_file():
                raise SettingsError(f"config error: env file {env_file} does not exist")
            return cls(_env_file=env_file, **overrides)
        return cls(**overrides)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or cls.__name__
        env = "DOLBOM_" + "__".join(str(x) for x in first["loc"]).upper()
        raise SettingsError(f"config error: {where} ({env}): {first['msg']}") from None


def env_file_parent(help_: str = "read DOLBOM_* settings from this file too"
                    ) -> argparse.ArgumentParser:
    """The ``--env-file`` option every service command takes, as an argparse parent."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--env-file", type=Path, default=None, help=help_)
    return common
