"""Backpressure: past ``max_pending`` undurable messages, reading from the broker pauses;
memory stays bounded and the broker holds the backlog."""

from __future__ import annotations

from collections.abc import Callable

from dolbom.mqtt import Client


class Backpressure:
    def __init__(self, client: Callable[[], Client | None]) -> None:
        self.client = client  # the connected client, if any
        self.paused = False

    def pause(self, paused: bool) -> None:
        self.paused = paused
        client = self.client()
        if client is not None:
            (client.pause_reading if paused else client.resume_reading)("backlog")
