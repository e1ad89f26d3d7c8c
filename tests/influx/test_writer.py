"""InfluxDB writer retry classes, against the real InfluxDB 1.6."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from pydantic import SecretStr

from dolbom.influx.admin import InfluxHTTP, InfluxUsers
from dolbom.influx.errors import RetryLater
from dolbom.influx.writer import InfluxWriter
from dolbom.settings import InfluxSettings
from dolbom.stack.influx import InfluxDB
from dolbom.stack.proc import free_port

pytestmark = pytest.mark.integration


def settings(url: str, users: InfluxUsers, user: str = "ingest") -> InfluxSettings:
    name, pw = users.ingest if user == "ingest" else (user, "wrong")
    return InfluxSettings(url=url, username=name, password=SecretStr(pw), timeout_s=5)


def now_ms() -> int:
    return int(time.time() * 1000)


async def test_good_lines_written(influx: InfluxDB, influx_users: InfluxUsers,
                                  influx_admin: InfluxHTTP) -> None:
    """A valid batch is written once with the write-only ingest user."""
    t = now_ms()
    lines = [f"reading,site=w1,device=d{i} temperature_c=20.5 {t}".encode() for i in range(50)]
    async with InfluxWriter(settings(influx.url, influx_users)) as w:
        assert await w.write(lines) == []
    assert influx_admin.count("SELECT count(temperature_c) FROM reading WHERE site='w1'",
                              "care") == 50


async def test_partial_write_keeps_good_lines_and_returns_bad(
        influx: InfluxDB, influx_users: InfluxUsers, influx_admin: InfluxHTTP) -> None:
    """A 400 partial write: every good line is stored, only the bad ones come back."""
    t = now_ms()
    good = [f"reading,site=w2,device=d{i} temperature_c=1.5 {t}".encode() for i in range(9)]
    bad_syntax = b"reading,site=w2,device=x temperature_c= 1"
    conflict = f'reading,site=w2,device=d0 temperature_c="hot" {t + 1}'.encode()
    async with InfluxWriter(settings(influx.url, influx_users)) as w:
        rejected = await w.write([*good[:4], bad_syntax, *good[4:], conflict])
    assert sorted(ln for r in rejected for ln in r.lines) == sorted([bad_syntax, conflict])
    assert influx_admin.count("SELECT count(temperature_c) FROM reading WHERE site='w2'",
                              "care") == 9


async def test_413_splits_the_batch(runtime_dir: Path, influx_users: InfluxUsers) -> None:
    """A batch larger than InfluxDB's max-body-size is split until it fits; nothing lost."""
    srv = InfluxDB(Path(tempfile.mkdtemp(prefix="influx413-", dir=runtime_dir)),
                   max_body_size=4000)
    srv.start()
    try:
        srv.bootstrap(influx_users, "care")
        t = now_ms()
        lines = [f"reading,site=w3,device=d{i:04d} temperature_c=20.25 {t}".encode()
                 for i in range(600)]  # ~30 kB
        async with InfluxWriter(settings(srv.url, influx_users)) as w:
            assert await w.write(lines) == []
            assert w.splits > 0
        admin = InfluxHTTP(srv.url, *influx_users.admin)
        assert admin.count("SELECT count(temperature_c) FROM reading", "care") == 600
    finally:
        srv.stop()


async def test_unreachable_and_unauthorised_are_retry_later(
        influx: InfluxDB, influx_users: InfluxUsers) -> None:
    """No server, or refused credentials: RetryLater (keep the batch), never a drop."""
    line = [f"reading,site=w4,device=d temperature_c=1 {now_ms()}".encode()]
    async with InfluxWriter(settings(f"http://127.0.0.1:{free_port()}", influx_users)) as w:
        with pytest.raises(RetryLater, match="unreachable"):
            await w.write(line)
    async with InfluxWriter(settings(influx.url, influx_users, user="mallory")) as w:
        with pytest.raises(RetryLater, match="401"):
            await w.write(line)


async def test_dashboard_user_cannot_write(influx: InfluxDB, influx_users: InfluxUsers) -> None:
    """Least privilege: the read-only dashboard user is refused on /write."""
    s = InfluxSettings(url=influx.url, username=influx_users.dashboard[0],
                       password=SecretStr(influx_users.dashboard[1]))
    async with InfluxWriter(s) as w:
        with pytest.raises(RetryLater, match="403"):
            await w.write([f"reading,site=w5,device=d temperature_c=1 {now_ms()}".encode()])


