"""Build the configured channels from ``NotifySettings``, once, at start-up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol, runtime_checkable

from dolbom.alerts.notify.base import Channel
from dolbom.alerts.notify.settings import NotifySettings

CHANNEL_NAMES = ("webhook", "ntfy", "email", "apprise")

# What is missing when a channel is needed but not configured, in settings' words.
_HOW = {
    "webhook": "DOLBOM_NOTIFY__WEBHOOK_SECRET is not set, and webhooks are always signed "
               "(DESIGN.md §5): set a secret of at least 16 characters",
    "ntfy": "DOLBOM_NOTIFY__NTFY_URL is not set",
    "email": "DOLBOM_NOTIFY__SMTP_HOST (and _SMTP_SENDER) are not set",
}


class ChannelConfigError(ValueError):
    """A channel that recipients need cannot be built from the settings."""


@runtime_checkable
class Closable(Protocol):
    async def aclose(self) -> None: ...


def build_channels(s: NotifySettings, *, require: Iterable[str] = ()) -> dict[str, Channel]:
    """The channels the settings configure, by name.

    ``require``: channel names the recipients use (e.g. from the registry); a
    required channel that is not configured raises ChannelConfigError naming
    the setting to fix, so an unsigned or missing webhook stops start-up
    instead of failing every alert later.
    """
    channels: dict[str, Channel] = {}
    if s.webhook_secret is not None:
        from dolbom.alerts.notify.webhook import WebhookChannel

        channels["webhook"] = WebhookChannel(s.webhook_secret.get_secret_value().encode(),
                                             timeout_s=s.timeout_s)
    if s.ntfy_url:
        from dolbom.alerts.notify.ntfy import NtfyChannel

        token = s.ntfy_token.get_secret_value() if s.ntfy_token else None
        channels["ntfy"] = NtfyChannel(s.ntfy_url, token, timeout_s=s.timeout_s)
    if s.smtp_host:
        from dolbom.alerts.notify.email import EmailChannel

        channels["email"] = EmailChannel(
            s.smtp_host, s.smtp_port, s.smtp_username,
            s.smtp_password.get_secret_value() if s.smtp_password else None,
            s.smtp_sender or "", s.smtp_starttls, s.timeout_s,
        )
    from dolbom.alerts.notify.apprise_channel import AppriseChannel  # heavy: plugin discovery

    channels["apprise"] = AppriseChannel(timeout_s=s.timeout_s)

    for name in require:
        if name not in channels:
            how = _HOW.get(name, f"no such channel (known: {', '.join(CHANNEL_NAMES)})")
            raise ChannelConfigError(f"notification channel {name!r} is needed but {how}")
    return channels


async def aclose_all(channels: Mapping[str, Channel]) -> None:
    """Close what the channels hold open (HTTP keep-alive sessions); call once at shutdown."""
    for ch in channels.values():
        if isinstance(ch, Closable):
            await ch.aclose()
