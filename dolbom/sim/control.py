"""Incidents on command: a unix socket taking one JSON object per line.

    {"incident": "fall", "home": "h003"}                      -> {"ok": true}
    {"incident": "device_death", "home": "h003", "device": "door-h003"}
    {"incident": "recover", "home": "h003"}
    {"incident": "heat_wave", "home": "*"}                    -> every home (a city-wide heat wave)
    {"stats": true}                                           -> {"ok": true, "stats": {...}}

A unix socket rather than TCP: only local users who can reach the 0700 state
directory can inject incidents, with no port to guard. Bad commands get an
error reply and never stop the simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from dolbom.sim.errors import ControlError

MAX_LINE = 4096
IDLE_S = 60.0
# sockaddr_un.sun_path is 108 bytes on Linux, including the NUL.
MAX_SOCKET_PATH = 107

Handler = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def check_socket_path(path: Path) -> Path:
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ControlError(f"control socket path {path} is longer than {MAX_SOCKET_PATH} "
                           "bytes: choose a shorter state directory or --socket")
    return path


async def serve(path: Path, handle: Handler, ready: asyncio.Event | None = None) -> None:
    """Serve commands on ``path`` until cancelled; the socket file is removed on exit."""
    claim(path)

    async def client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await asyncio.wait_for(reader.readline(), IDLE_S)
                except (TimeoutError, ValueError, ConnectionError):
                    break  # idle, a line over MAX_LINE, or the peer went away
                if not line:
                    break
                reply = await _dispatch(line, handle)
                writer.write(orjson.dumps(reply) + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    old_umask = os.umask(0o177)  # the socket file is created 0600
    try:
        server = await asyncio.start_unix_server(client, path, limit=MAX_LINE)
    finally:
        os.umask(old_umask)
    try:
        async with server:
            if ready is not None:
                ready.set()
            await server.serve_forever()
    finally:
        _remove(path)


def claim(path: Path) -> None:
    """Remove a socket left by a simulator that was killed; refuse one still in use."""
    check_socket_path(path)
    if not path.exists():
        return
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
        except OSError:
            path.unlink()  # nobody listens: stale
            return
    raise ControlError(f"another simulator is listening on {path}")


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


async def _dispatch(line: bytes, handle: Handler) -> dict[str, Any]:
    try:
        cmd = orjson.loads(line)
    except orjson.JSONDecodeError:
        return {"ok": False, "error": "not JSON"}
    if not isinstance(cmd, dict):
        return {"ok": False, "error": "a command is a JSON object"}
    return await handle(cmd)


async def send(path: Path, command: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one command and return the reply; ControlError if nobody answers."""
    check_socket_path(path)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    except (OSError, TimeoutError) as e:
        raise ControlError(f"cannot reach the simulator at {path}: {e}") from None
    try:
        writer.write(orjson.dumps(command) + b"\n")
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    except (OSError, TimeoutError) as e:
        raise ControlError(f"the simulator at {path} did not answer: {e}") from None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    try:
        reply = orjson.loads(line)
    except orjson.JSONDecodeError:
        raise ControlError("the simulator sent a reply that is not JSON") from None
    if not isinstance(reply, dict):
        raise ControlError("the simulator sent a reply that is not an object")
    return reply
