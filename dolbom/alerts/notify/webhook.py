"""Signed webhook channel (DESIGN.md §5).

``POST <address>`` with the JSON of ``webhook_body`` and the headers

    Content-Type: application/json
    X-Dolbom-Signature: sha256=<hex HMAC-SHA256 of the exact body bytes>
    X-Dolbom-Delivery: <alert_id>-<kind>-<tier>   (same on every retry: dedup on it)

A receiver verifies the signature over the raw body with ``verify`` before
parsing it. Webhooks are always signed: there is no unsigned mode.
"""

from __future__ import annotations

from dolbom.alerts.notify._http import HttpPoster, http_url
from dolbom.alerts.notify.base import (
    DELIVERY_HEADER,
    SIGNATURE_HEADER,
    DeliveryError,
    delivery_id,
    sign,
    webhook_body,
)
from dolbom.alerts.notify.notice import Notice

MIN_SECRET_BYTES = 16


class WebhookChannel:
    name = "webhook"

    def __init__(self, secret: bytes, timeout_s: float = 10) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ValueError(
                f"the webhook channel needs a signing secret of at least {MIN_SECRET_BYTES} "
                "bytes: receivers must be able to tell Dolbom's alerts from forged ones "
                "(set DOLBOM_NOTIFY__WEBHOOK_SECRET)"
            )
        self._secret = secret
        self._http = HttpPoster(self.name, timeout_s)

    async def send(self, address: str, notice: Notice, locale: str) -> None:
        try:
            url = http_url(address, "webhook address")
        except ValueError as e:
            raise DeliveryError(f"webhook: {e}", retryable=False) from None
        body = webhook_body(notice, locale)
        await self._http.post(url, body, {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(body, self._secret),
            DELIVERY_HEADER: delivery_id(notice),
        })

    async def aclose(self) -> None:
        await self._http.aclose()
