"""Notification channel settings: ``notify`` in the alerts service's settings.

Environment names are ``DOLBOM_NOTIFY__<FIELD>`` (e.g. ``DOLBOM_NOTIFY__NTFY_URL``).
A channel is built only when it is configured: the webhook by its signing
secret, ntfy by its server URL, e-mail by its SMTP host. Apprise needs no
settings (its URLs carry their own credentials) and is always available.
"""

from __future__ import annotations

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from dolbom.alerts.notify._http import http_url


class NotifySettings(BaseModel):
    # HMAC-SHA256 key for X-Dolbom-Signature; the webhook channel exists only with it.
    webhook_secret: SecretStr | None = None
    # ntfy server, e.g. https://ntfy.sh or a self-hosted one; recipients' addresses are topics.
    ntfy_url: str | None = None
    ntfy_token: SecretStr | None = None  # access token (tk_...) for protected topics
    smtp_host: str | None = None
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str | None = None  # From: address, required with smtp_host
    smtp_starttls: bool = True  # upgrade with STARTTLS (required when True)
    # Upper bound of one send on any channel; a timeout is retried by the outbox.
    timeout_s: float = Field(10.0, gt=0, le=120)

    @field_validator("webhook_secret")
    @classmethod
    def _secret_length(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value().encode()) < 16:
            raise ValueError("must be at least 16 characters (e.g. `openssl rand -hex 32`)")
        return v

    @field_validator("ntfy_url")
    @classmethod
    def _ntfy_url(cls, v: str | None) -> str | None:
        if v is not None:
            http_url(v, "ntfy_url")  # ValueError says what is wrong
        return v

    @model_validator(mode="after")
    def _smtp_complete(self) -> NotifySettings:
        if self.smtp_host and not self.smtp_sender:
            raise ValueError("smtp_sender is required when smtp_host is set")
        if self.smtp_password is not None and not self.smtp_username:
            raise ValueError("smtp_password is set but smtp_username is not")
        return self
