"""NotifySettings and build_channels: only configured channels, never an unsigned webhook."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dolbom.alerts.notify import (
    ChannelConfigError,
    NotifySettings,
    aclose_all,
    build_channels,
)
from dolbom.alerts.notify.apprise_channel import AppriseChannel
from dolbom.alerts.notify.email import EmailChannel
from dolbom.alerts.notify.ntfy import NtfyChannel
from dolbom.alerts.notify.webhook import WebhookChannel
from dolbom.settings import BaseServiceSettings, SettingsError, load

FULL = dict(webhook_secret="0123456789abcdef0123", ntfy_url="https://ntfy.example.org",
            ntfy_token="tk_abc", smtp_host="smtp.example.org", smtp_port=587,
            smtp_username="dolbom", smtp_password="pw", smtp_sender="alerts@example.org",
            smtp_starttls=True, timeout_s=5)


class _Service(BaseServiceSettings):
    """Stands in for the alerts service settings, which nest NotifySettings as ``notify``."""

    notify: NotifySettings = NotifySettings()


def test_defaults_build_only_apprise() -> None:
    """Nothing configured: only Apprise (its URLs carry their own credentials)."""
    channels = build_channels(NotifySettings())
    assert list(channels) == ["apprise"]
    assert isinstance(channels["apprise"], AppriseChannel)


async def test_everything_configured() -> None:
    """Each configured channel is built with its settings, under its name."""
    channels = build_channels(NotifySettings.model_validate(FULL))
    assert {n: type(c) for n, c in channels.items()} == {
        "webhook": WebhookChannel, "ntfy": NtfyChannel, "email": EmailChannel,
        "apprise": AppriseChannel}
    assert all(name == c.name for name, c in channels.items())
    await aclose_all(channels)


def test_required_webhook_without_secret_is_a_clear_error() -> None:
    """Recipients need webhooks but no secret: refuse to start, naming the setting."""
    with pytest.raises(ChannelConfigError, match="DOLBOM_NOTIFY__WEBHOOK_SECRET"):
        build_channels(NotifySettings(), require={"webhook"})
    with pytest.raises(ChannelConfigError, match="NTFY_URL"):
        build_channels(NotifySettings(), require=["ntfy"])
    build_channels(NotifySettings.model_validate(FULL), require={"webhook", "ntfy", "email"})


@pytest.mark.parametrize(("bad", "words"), [
    ({"webhook_secret": "short"}, "at least 16"),
    ({"ntfy_url": "ntfy.sh"}, "http"),
    ({"smtp_host": "smtp.example.org"}, "smtp_sender is required"),
    ({"smtp_password": "pw"}, "smtp_username"),
    ({"timeout_s": 0}, "greater than 0"),
])
def test_bad_settings_are_refused(bad: dict[str, object], words: str) -> None:
    """Incomplete or unsafe channel settings fail validation with the reason."""
    with pytest.raises(ValidationError, match=words):
        NotifySettings.model_validate(bad)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """DOLBOM_NOTIFY__* variables configure the channels; a bad one is one clear line."""
    monkeypatch.setenv("DOLBOM_NOTIFY__WEBHOOK_SECRET", "0123456789abcdef0123")
    monkeypatch.setenv("DOLBOM_NOTIFY__NTFY_URL", "http://127.0.0.1:8080")
    s = load(_Service)
    assert s.notify.webhook_secret is not None
    assert set(build_channels(s.notify)) == {"webhook", "ntfy", "apprise"}
    assert "0123456789abcdef" not in repr(s.notify)  # secrets stay secret
    monkeypatch.setenv("DOLBOM_NOTIFY__WEBHOOK_SECRET", "short")
    with pytest.raises(SettingsError, match=r"notify\.webhook_secret"):
        load(_Service)
