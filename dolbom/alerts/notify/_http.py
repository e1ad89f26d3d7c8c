"""One bounded HTTP POST for the HTTP channels (webhook, ntfy), with retry classes.

Status code → what the delivery worker must do (as in ``dolbom.influx.writer``):
    2xx                 delivered
    408, 425, 429, 5xx  retry later (the receiver is busy, restarting or broken for now)
    3xx                 not retryable: redirects are not followed (a redirected POST would
                        lose its body or its signature); configure the final URL
    other 4xx           not retryable: bad address, auth or payload; it will never succeed
    timeout, refused,
    reset, DNS failure  retry later

Reasons name the channel and the status, never the address: addresses are
personal data or carry secrets (tokens in URLs).
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp
from yarl import URL

from dolbom import __version__
from dolbom.alerts.notify.base import DeliveryError

USER_AGENT = f"dolbom/{__version__}"
_RETRYABLE_4XX = frozenset({408, 425, 429})


def retryable_status(status: int) -> bool:
    return status in _RETRYABLE_4XX or status >= 500


def http_url(value: str, what: str) -> URL:
    """Parse an http(s) URL or raise ValueError saying what is wrong (no secrets echoed)."""
    try:
        url = URL(value)
    except (ValueError, TypeError):
        raise ValueError(f"{what} is not a URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"{what} must be an http:// or https:// URL with a host")
    return url


class HttpPoster:
    """A shared keep-alive session (life-safety latency: no new TLS handshake per alert).

    Created lazily in the running loop; close it with ``aclose``. A poster
    belongs to one event loop.
    """

    # 2 × the outbox's PARALLEL: life-safety deliveries have connections of their own
    # even while every welfare delivery hangs on a slow receiver.
    def __init__(self, channel: str, timeout_s: float, max_connections: int = 32) -> None:
        if not timeout_s > 0:
            raise ValueError("timeout_s must be > 0")
        self.channel = channel
        self.timeout_s = timeout_s
        self._limit = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                connector=aiohttp.TCPConnector(limit=self._limit),
                headers={"User-Agent": USER_AGENT},
            )
        return self._session

    async def post(self, url: str | URL, body: bytes, headers: Mapping[str, str]) -> None:
        """POST ``body``; return if the receiver answered 2xx, else raise DeliveryError."""
        ch = self.channel
        try:
            async with self._get_session().post(
                url, data=body, headers=dict(headers), allow_redirects=False,
            ) as resp:
                status, phrase = resp.status, resp.reason or ""
                # Read the (small) answer so the connection can be reused.
                await resp.content.read(8192)
        except TimeoutError:  # also aiohttp.ServerTimeoutError
            raise DeliveryError(f"{ch}: no answer within {self.timeout_s:g} s",
                                retryable=True, silent=True) from None
        except aiohttp.InvalidURL:
            raise DeliveryError(f"{ch}: invalid URL", retryable=False) from None
        except aiohttp.ClientConnectorCertificateError:
            raise DeliveryError(f"{ch}: the receiver's TLS certificate is not valid",
                                retryable=False) from None
        except (aiohttp.ClientError, OSError) as e:
            raise DeliveryError(f"{ch}: {type(e).__name__}", retryable=True) from None
        if 200 <= status < 300:
            return
        raise DeliveryError(f"{ch}: HTTP {status} {phrase}".rstrip(),
                            retryable=retryable_status(status))

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
