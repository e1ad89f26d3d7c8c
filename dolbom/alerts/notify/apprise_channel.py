"""Apprise channel: the address is any Apprise URL (SMS, Telegram, Slack, Matrix, …).

See https://github.com/caronc/apprise/wiki for the URL forms. Apprise reports
only success or failure, not why, so a failed send is retryable; an address
Apprise cannot parse (unknown scheme, missing token) is not.

These services are third parties: the text carries opaque ids only
(DESIGN.md §6). Apprise URLs contain the services' tokens (and phone numbers
for SMS): reasons never echo the address, and a filter on Apprise's own
``apprise`` logger cuts every URL in its lines down to the scheme.
"""

from __future__ import annotations

import asyncio
import logging
import re

import apprise

from dolbom.alerts.notify.base import DeliveryError
from dolbom.alerts.notify.notice import Notice
from dolbom.alerts.notify.texts import detail_lines, title_of

_URL_IN_TEXT = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*)://\S+")


class RedactURLs(logging.Filter):
    """Rewrites a log record so that ``scheme://anything`` reads ``scheme://…``."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        redacted = _URL_IN_TEXT.sub(r"\1://…", msg)
        if redacted != msg:
            record.msg, record.args = redacted, ()
        return True


def _redact_apprise_logs() -> None:
    log = logging.getLogger("apprise")
    if not any(isinstance(f, RedactURLs) for f in log.filters):
        log.addFilter(RedactURLs())


_TYPE = {"high": apprise.NotifyType.FAILURE, "medium": apprise.NotifyType.WARNING,
         "low": apprise.NotifyType.INFO}


class AppriseChannel:
    name = "apprise"

    def __init__(self, timeout_s: float = 10) -> None:
        if not timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        self.timeout_s = timeout_s
        _redact_apprise_logs()
        # Keep nothing on disk: each send stands alone.
        self._asset = apprise.AppriseAsset(storage_mode=apprise.PersistentStoreMode.MEMORY)

    async def send(self, address: str, notice: Notice, locale: str) -> None:
        ap = apprise.Apprise(asset=self._asset)
        if not ap.add(address):
            scheme = address.split("://", 1)[0] if "://" in address else "?"
            scheme = scheme if scheme.isascii() and scheme.isalnum() else "?"
            raise DeliveryError(f"apprise: not a usable Apprise URL (scheme {scheme})",
                                retryable=False)
        ntype = (apprise.NotifyType.SUCCESS if notice.kind == "resolved"
                 else _TYPE.get(notice.priority, apprise.NotifyType.INFO))
        try:
            async with asyncio.timeout(self.timeout_s):
                # Apprise shows the title where the service has one and puts it in
                # front of the body where it has not (SMS), so the body is the rest.
                ok = await ap.async_notify(
                    body="\n".join(detail_lines(notice, locale)),
                    title=title_of(notice, locale),
                    notify_type=ntype,
                    body_format=apprise.NotifyFormat.TEXT,
                )
        except TimeoutError:
            raise DeliveryError(f"apprise: no answer within {self.timeout_s:g} s",
                                retryable=True, silent=True) from None
        if not ok:
            raise DeliveryError("apprise: the service did not accept the notification",
                                retryable=True)

    async def aclose(self) -> None:
        """Nothing held open."""
