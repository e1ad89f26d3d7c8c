"""Backpressure: past ``max_pending`` undurable messages, reading from the broker pauses;
memory stays bounded and the broker holds the backlog."""

from __future__ import annotations

from dolbom.mqtt import MqttSession


class Backpressure:
    def __init__(self, session: MqttSession) -> None:
        self.session = session
        self.paused = False

    def pause(self, paused: bool) -> None:
        self.paused = paused
        client = self.session.client
        if client is not None:
            (client.pause_reading if paused else client.resume_reading)("backlog")
