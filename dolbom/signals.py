"""Stopping a service cleanly: SIGTERM and SIGINT set its ``stopping`` event, and the
service drains its in-flight work before it exits."""

from __future__ import annotations

import asyncio
import signal


def install_signal_handlers(stopping: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
