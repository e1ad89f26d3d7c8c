"""A small asyncio TCP proxy for cutting the gateway's uplink in tests.

``passthrough``: bytes flow both ways. ``blackhole``: every connection stays open but
nothing is forwarded any more, and new connections are accepted and then stalled (a
silent partition: no RST, no FIN; only keepalive notices). Back to ``passthrough``, the
stalled connections are aborted (as a NAT would have forgotten them) and new ones flow.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

from dolbom.stack.proc import free_port


class Proxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = free_port()
        self.holes = False
        self._server: asyncio.Server | None = None
        self._conns: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.accepted: list[bool] = []  # per connection: whether it was stalled

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, t: type[BaseException] | None, e: BaseException | None,
                        tb: TracebackType | None) -> None:
        assert self._server is not None
        self._server.close()
        self.reset_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def blackhole(self) -> None:
        self.holes = True

    def passthrough(self) -> None:
        self.holes = False
        self.reset_all()

    def reset_all(self) -> None:
        """Abort every connection (both sides see it end)."""
        for a, b in list(self._conns):
            for w in (a, b):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.transport.abort()
        self._conns.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted.append(self.holes)
        if self.holes:
            self._conns.add((writer, None))
            return  # accepted, never answered
        try:
            ur, uw = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        pair = (writer, uw)
        self._conns.add(pair)
        for src, dst in ((reader, uw), (ur, writer)):
            t = asyncio.create_task(self._pipe(src, dst))
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while True:
                data = await src.read(65536)
                if not data:
                    break
                if self.holes:
                    continue  # swallowed: the partition is silent
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.close()
