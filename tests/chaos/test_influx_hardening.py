"""InfluxDB as the stack runs it (TESTPLAN S-06): loopback only, authentication on, each
user with the least right it needs, no profiler."""

from __future__ import annotations

import base64
import urllib.error
import urllib.parse
import urllib.request

import pytest

from dolbom.stack.stack import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.security, pytest.mark.integration]


def _status(url: str, user: tuple[str, str] | None = None, data: bytes | None = None) -> int:
    headers = {}
    if user is not None:
        token = base64.b64encode(f"{user[0]}:{user[1]}".encode()).decode()
        headers["Authorization"] = f"Basic {token}"
    req = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def _listening(port: int) -> set[str]:
    """Local addresses (hex, as /proc/net/tcp{,6} write them) listening on ``port``."""
    out = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            for line in f.readlines()[1:]:
                local, state = line.split()[1], line.split()[3]
                addr, p = local.rsplit(":", 1)
                if state == "0A" and int(p, 16) == port:  # 0A: LISTEN
                    out.add(addr)
    return out


def test_influxdb_is_loopback_only_authenticated_and_least_privileged(stack: Stack) -> None:
    """S-06: both of InfluxDB's ports listen on 127.0.0.1 only; an unauthenticated query
    is 401; the ingest user writes but cannot read, the dashboard user reads but cannot
    write; /debug/pprof is off (404). /debug/vars answers without a password in 1.6: the
    documented residual, acceptable only because it is loopback."""
    url, users = stack.influx.url, stack.influx_users
    assert _listening(stack.influx.port) == {"0100007F"}  # 127.0.0.1
    assert _listening(stack.influx.rpc_port) == {"0100007F"}
    q = urllib.parse.urlencode({"db": "care", "q": "SELECT * FROM reading LIMIT 1"})
    line = b"reading,site=s06,home=h,device=d temperature_c=1"
    write = f"{url}/write?db=care"
    assert _status(f"{url}/query?{q}") == 401
    assert _status(write, data=line) == 401
    assert _status(write, users.ingest, line) == 204
    assert _status(f"{url}/query?{q}", users.ingest) == 403
    assert _status(f"{url}/query?{q}", users.dashboard) == 200
    assert _status(write, users.dashboard, line) == 403
    assert _status(f"{url}/debug/pprof/") == 404
    assert _status(f"{url}/debug/vars") == 200  # the residual, loopback only
