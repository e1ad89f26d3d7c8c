"""Settings of the HTTP API (``DOLBOM_API__*``; every option is in dolbom.example.env).

Loaded once by ``load_settings`` at start-up and passed to ``create_app``. There is no
default signing key: ``jwt_secret`` must be set (at least 32 characters), or start-up
stops with one line naming ``DOLBOM_API__JWT_SECRET``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dolbom.api.proxy import Network, parse_networks
from dolbom.mqtt.tls import is_loopback
from dolbom.protocol import DEFAULT_PREFIX, Topics
from dolbom.registry.broker_files import BrokerFiles
from dolbom.registry.settings import broker_files_of, broker_paths_together
from dolbom.settings import InfluxSettings, SettingsError

ENV_PREFIX = "DOLBOM_API__"
MAX_ACCESS_TTL_S = 900  # access tokens are short-lived: 15 min at most


class ApiSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", env_file=None, extra="ignore",
        env_ignore_empty=True,  # `DOLBOM_API__X=` means "the default", as in dolbom.example.env
    )

    database_url: str = "sqlite:///dolbom.db"
    # HS256 signing key of access and refresh tokens. Changing it signs everyone out.
    jwt_secret: SecretStr = Field(min_length=32)
    access_ttl_s: int = Field(600, ge=30, le=MAX_ACCESS_TTL_S)
    refresh_ttl_s: int = Field(43_200, ge=60, le=30 * 86_400)
    # Where ``dolbom api serve`` listens (plain HTTP). Anything but loopback is refused
    # unless ``behind_tls_proxy`` says an HTTPS reverse proxy is in front (DESIGN.md §2).
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    behind_tls_proxy: bool = False
    # Addresses or networks (comma-separated) of the reverse proxies whose
    # X-Forwarded-For / X-Forwarded-Proto are believed; from anyone else they are ignored.
    trusted_proxies: str = ""
    # InfluxDB with a read-only user (the dashboard user): resident views, readings.
    influx: InfluxSettings = InfluxSettings()
    # Console cookies always carry the Secure flag. False: only when the request came over
    # HTTPS (directly, or from a trusted proxy with X-Forwarded-Proto: https), so a
    # plain-HTTP loopback trial still signs in.
    cookie_secure: bool = True
    # Sign-in attempts: after this many failures for one (username, client IP) within the
    # window, that pair is refused until the window has passed.
    login_max_failures: int = Field(5, ge=1, le=1000)
    login_window_s: float = Field(300.0, gt=0)
    # How often the alert stream polls the alert journal (alert_events) for changes.
    sse_poll_s: float = Field(0.5, gt=0, le=10)
    # Events queued per alert-stream client; a client this far behind is disconnected.
    sse_queue_size: int = Field(256, ge=1, le=100_000)
    # Device provisioning and revocation rewrite the broker's password and ACL files and
    # reload it, as ``dolbom device add`` does: all three paths or none (then the API says
    # the broker was not updated; run ``dolbom registry sync-broker``).
    broker_passwd: Path | None = None
    broker_acl: Path | None = None
    broker_pid_file: Path | None = Field(None, validate_default=True)
    broker_owner: str | None = None
    topic_prefix: str = DEFAULT_PREFIX
    # The audit chain's HMAC key, kept outside the database: a file (mode 0600 or 0400,
    # at least 32 bytes) or the value itself. Neither: a key derived from JWT_SECRET.
    audit_key_file: Path | None = None
    audit_key: SecretStr | None = Field(None, min_length=32)
    # Checkpoints of the audit chain (newest id and hash) are appended to this file (0600;
    # keep it where only the operator writes, or ship it off the host) and to the log
    # every AUDIT_CHECKPOINT_S while the log grows. Empty: only to the log.
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_s: float = Field(300.0, ge=1, le=86_400)
    # Entries up to this id were written before the chain was keyed (an upgraded log):
    # they verify with their plain hash. Any other unkeyed entry is a rewrite.
    audit_unkeyed_until: int = Field(0, ge=0)

    _broker_paths = field_validator("broker_pid_file")(broker_paths_together)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        Topics(v)  # raises ValueError with the reason
        return v.strip("/")

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, v: str) -> str:
        parse_networks(v)  # raises ValueError naming the bad entry
        return v

    @property
    def proxy_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.trusted_proxies)

    def serve_refusal(self) -> str | None:
        """Why ``dolbom api serve`` must not start with these settings, or None.

        Plain HTTP only on loopback, unless the operator says a TLS proxy is in front;
        and a proxy in front must be trusted, or every client would look like the proxy
        (one login-limiter key for everyone, the proxy's address in the audit log)."""
        if is_loopback(self.host):
            return None
        if not self.behind_tls_proxy:
            return (f"refusing to serve plain HTTP on {self.host} (not loopback): put an "
                    f"HTTPS reverse proxy in front and set {ENV_PREFIX}BEHIND_TLS_PROXY=true, "
                    f"or listen on 127.0.0.1 (docs/api.md)")
        if not self.proxy_networks:
            return (f"{ENV_PREFIX}BEHIND_TLS_PROXY=true needs {ENV_PREFIX}TRUSTED_PROXIES "
                    f"(the proxy's address), else every client looks like the proxy")
        return None

    @property
    def broker_files(self) -> BrokerFiles | None:
        return broker_files_of(self.broker_passwd, self.broker_acl, self.broker_pid_file,
                               self.broker_owner)


def load_settings(env_file: Path | None = None, **overrides: Any) -> ApiSettings:
    """Load settings, turning a validation error into one line that names the option."""
    try:
        if env_file is not None:
            if not env_file.is_file():
                raise SettingsError(f"config error: env file {env_file} does not exist")
            return ApiSettings(_env_file=env_file, **overrides)
        return ApiSettings(**overrides)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "api"
        env = ENV_PREFIX + "__".join(str(x) for x in first["loc"]).upper()
        msg = first["msg"].splitlines()[0] if first["msg"] else "invalid"
        raise SettingsError(f"config error: {where} ({env}): {msg}") from None
