"""Batches of line protocol → InfluxDB ``POST /write`` (v1 API), with retry classes.

Status code → what we do (after telegraf's influxdb outputs):
    204            written
    400            partial write: InfluxDB kept the good lines; the batch is split
                   until the bad lines stand alone and those are dead-lettered
                   (re-writing good lines is harmless: timestamps are explicit)
    413            too large: split in half and write each half
    401, 403, 404  misconfigured or not bootstrapped: retry later (and spool)
    429, 5xx,
    timeouts       retry later with capped, jittered backoff (and spool)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import aiohttp

from dolbom.influx.errors import Rejected, RetryLater
from dolbom.settings import InfluxSettings

log = logging.getLogger(__name__)


class InfluxWriter:
    def __init__(self, settings: InfluxSettings) -> None:
        self.settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._headers = settings.auth_headers()
        self._url = settings.url.rstrip("/") + "/write"
        self._params = {"db": settings.database, "precision": "ms"}
        self.writes = 0
        self.splits = 0

    async def __aenter__(self) -> InfluxWriter:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.settings.timeout_s),
            connector=aiohttp.TCPConnector(limit=4),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    async def write(self, lines: Sequence[bytes], rp: str | None = None) -> list[Rejected]:
        """Write all lines (into retention policy ``rp``; None: the database's default).
        Returns the lines InfluxDB refused for good (to dead-letter).

        Raises RetryLater if InfluxDB cannot take them now; nothing is lost then:
        the caller keeps the batch.
        """
        if not lines:
            return []
        status, text = await self._post(b"\n".join(lines), rp)
        if status == 204:
            self.writes += 1
            return []
        if status == 413 or (status == 400 and len(lines) > 1):
            # Split: 413 halves the body; 400 narrows down the bad lines.
            self.splits += 1
            mid = len(lines) // 2
            return [*await self.write(lines[:mid], rp), *await self.write(lines[mid:], rp)]
        if status == 400:
            return [Rejected(list(lines), text[:300])]
        if status == 413:  # a single line too large for the server
            return [Rejected(list(lines), "line larger than InfluxDB's max-body-size")]
        raise RetryLater(f"InfluxDB answered {status}: {text[:200]}")

    async def ping(self) -> None:
        """Raise RetryLater unless InfluxDB answers its ``/ping`` (no write involved)."""
        assert self._session is not None, "use `async with InfluxWriter(...)`"
        url = self.settings.url.rstrip("/") + "/ping"
        try:
            async with self._session.get(url) as resp:
                if resp.status != 204:
                    raise RetryLater(f"InfluxDB /ping answered {resp.status}")
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise RetryLater(f"InfluxDB unreachable: {type(e).__name__}: {e}") from e

    async def _post(self, body: bytes, rp: str | None = None) -> tuple[int, str]:
        assert self._session is not None, "use `async with InfluxWriter(...)`"
        params = self._params if rp is None else {**self._params, "rp": rp}
        try:
            async with self._session.post(
                self._url, params=params, data=body, headers=self._headers
            ) as resp:
                if resp.status == 204:
                    return 204, ""
                return resp.status, await resp.text()
        except (TimeoutError, aiohttp.ClientError, OSError) as e:
            raise RetryLater(f"InfluxDB unreachable: {type(e).__name__}: {e}") from e
