"""Notification channels (DESIGN.md §5): webhook, ntfy, e-mail and Apprise URLs.

The delivery worker builds the channels once with ``build_channels`` and
calls ``channel.send(address, notice, locale)`` for each outbox row; a
``DeliveryError`` says whether to retry later or fall back to the next
channel. Texts (``render``) are Korean or English and carry opaque ids only
(DESIGN.md §6). Channel modules are imported lazily by ``build_channels``:
importing this package stays light.
"""

from dolbom.alerts.notify.base import (
    Channel,
    DeliveryError,
    delivery_id,
    render,
    sign,
    verify,
    webhook_body,
)
from dolbom.alerts.notify.factory import ChannelConfigError, aclose_all, build_channels
from dolbom.alerts.notify.notice import KINDS, Notice
from dolbom.alerts.notify.settings import NotifySettings

__all__ = [
    "KINDS",
    "Channel",
    "ChannelConfigError",
    "DeliveryError",
    "Notice",
    "NotifySettings",
    "aclose_all",
    "build_channels",
    "delivery_id",
    "render",
    "sign",
    "verify",
    "webhook_body",
]
