"""Settings shared by Dolbom's services (pydantic-settings, ``DOLBOM_`` env prefix).

Each service has one settings model, loaded once at start-up by ``load`` and
passed down; nothing reads the environment at import time. Every option, with
its default, is listed in ``dolbom.example.env``. A bad setting stops start-up
with one clear line (``SettingsError``).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dolbom.protocol import DEFAULT_PREFIX, Topics

S = TypeVar("S", bound=BaseSettings)


class SettingsError(SystemExit):
    """Raised (as a clean exit with one line) when configuration is invalid."""


class MqttSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    topic_prefix: str = DEFAULT_PREFIX
    keepalive: int = Field(30, ge=5, le=300)

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        Topics(v)  # raises ValueError with the reason
        return v.strip("/")


class InfluxSettings(BaseModel):
    url: str = "http://127.0.0.1:8086"
    database: str = "care"
    username: str | None = None
    password: SecretStr | None = None
    timeout_s: float = Field(10.0, gt=0)

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
