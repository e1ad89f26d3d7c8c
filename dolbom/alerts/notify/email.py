"""E-mail channel: one message per notice over SMTP (``aiosmtplib``), UTF-8 throughout.

The subject is the title (RFC 2047-encoded by the stdlib ``email`` package, so
Korean survives any relay); the body is the rendered text as UTF-8 in base64,
which needs no 8BITMIME or SMTPUTF8 support from the server.

SMTP reply → what the delivery worker must do:
    5xx (recipient, sender, auth or data refused)  not retryable: it will not change
    4xx (mailbox busy, greylisted, try later)      retry later
    server lacks STARTTLS or AUTH asked for        not retryable: a configuration error
    timeout, refused, disconnected                 retry later
The whole exchange is bounded by ``timeout_s``. Reasons never contain the
recipient's address: it is personal data.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from dolbom.alerts.notify.base import DELIVERY_HEADER, DeliveryError, delivery_id
from dolbom.alerts.notify.notice import Notice
from dolbom.alerts.notify.texts import render


def _is_address(value: str) -> bool:
    """A plain ``local@domain`` address, without display names or header-breaking characters."""
    if any(c in value for c in "\r\n<>,; \t") or value.count("@") != 1:
        return False
    local, domain = value.split("@")
    return bool(local) and bool(domain)


def _code_retryable(code: int) -> bool:
    return not 500 <= code < 600


class EmailChannel:
    name = "email"

    def __init__(
        self,
        host: str,
        port: int = 587,
        username: str | None = None,
        password: str | None = None,
        sender: str = "",
        starttls: bool = True,
        timeout_s: float = 10,
    ) -> None:
        if not _is_address(sender):
            raise ValueError("smtp_sender must be a plain e-mail address (name@domain)")
        if not timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        self.host, self.port = host, port
        self.username, self.password = username or None, password
        self.sender, self.starttls, self.timeout_s = sender, starttls, timeout_s

    def message(self, address: str, notice: Notice, locale: str) -> EmailMessage:
        title, body = render(notice, locale)
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = address
        msg["Subject"] = title
        msg["Date"] = format_datetime(datetime.now(UTC))
        # The domain is given: make_msgid would otherwise ask DNS for our FQDN.
        msg["Message-ID"] = make_msgid(idstring=delivery_id(notice),
                                       domain=self.sender.split("@")[1])
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies
        msg[DELIVERY_HEADER] = delivery_id(notice)
        msg.set_content(body, charset="utf-8", cte="base64")
        return msg

    async def send(self, address: str, notice: Notice, locale: str) -> None:
        if not _is_address(address):
            raise DeliveryError("email: the address is not a plain name@domain address",
                                retryable=False)
        msg = self.message(address, notice, locale)
        try:
            async with asyncio.timeout(self.timeout_s):
                await aiosmtplib.send(
                    msg,
                    sender=self.sender,
                    recipients=[address],
                    hostname=self.host,
                    port=self.port,
                    username=self.username,
                    password=(self.password or "") if self.username else None,
                    start_tls=self.starttls,
                    timeout=self.timeout_s,
                )
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = [r.code for r in e.recipients]
            raise DeliveryError(f"email: recipient refused ({', '.join(map(str, codes))})",
                                retryable=any(_code_retryable(c) for c in codes)) from None
        except aiosmtplib.SMTPResponseException as e:
            raise DeliveryError(f"email: {type(e).__name__} ({e.code})",
                                retryable=_code_retryable(e.code)) from None
        except TimeoutError:  # also aiosmtplib.SMTPTimeoutError
            raise DeliveryError(f"email: no answer within {self.timeout_s:g} s",
                                retryable=True, silent=True) from None
        except aiosmtplib.SMTPException as e:
            # aiosmtplib says "... not supported" (plain SMTPException) when the server
            # lacks STARTTLS or AUTH that the settings ask for: a configuration error.
            if isinstance(e, aiosmtplib.SMTPNotSupported) or "not supported" in str(e):
                raise DeliveryError("email: the server does not support what the smtp_* "
                                    "settings ask (STARTTLS or AUTH)", retryable=False) from None
            raise DeliveryError(f"email: {type(e).__name__}", retryable=True) from None
        except OSError as e:
            raise DeliveryError(f"email: {type(e).__name__}", retryable=True) from None

    async def aclose(self) -> None:
        """Nothing held open: one SMTP connection per message."""
