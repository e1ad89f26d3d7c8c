"""The stream session: QoS 0 uplink messages (activity, telemetry, status) → ``feed``
→ the rules. Only messages from a device of a known home get in; the life-safety events
among them are signs of life here (the alarm session journals them). A device in no
home is only heard (``homeless``: whether it is lost)."""

from __future__ import annotations

import asyncio
from functools import partial

from dolbom.alerts import feed
from dolbom.alerts.broker import Broker
from dolbom.alerts.homeless import HomelessWatch
from dolbom.alerts.settings import AlertsSettings
from dolbom.alerts.states import RuleStates
from dolbom.mqtt import Client, MqttSession, Received
from dolbom.protocol import Topics


class Stream:
    def __init__(self, settings: AlertsSettings, topics: Topics, rules: RuleStates,
                 broker: Broker, homeless: HomelessWatch | None = None) -> None:
        self.settings, self.topics, self.rules, self.broker = settings, topics, rules, broker
        self.homeless = homeless  # devices in no home: only whether they are heard
        self.client: Client | None = None
        self.count = 0  # messages the rules took

    @property
    def connected(self) -> bool:
        return self.client is not None and self.client.connected

    def on_message(self, msg: Received) -> None:
        topic = self.topics.parse(msg.topic)
        if topic is None:
            return
        rules = self.rules
        cfg = rules.device_home.config(topic.device)  # one of rules.homes: adopted together
        homeless = self.homeless
        if cfg is None:
            if homeless is not None and topic.device in homeless:
                feed.stream(topic, msg.payload, rules.now_ms(), homeless.observe)
            return
        if homeless is not None and homeless.held and topic.device in homeless.held:
            del homeless.held[topic.device]  # heard: its held device_lost is let go
        if feed.stream(topic, msg.payload, rules.now_ms(), partial(rules.observe, cfg.home)):
            self.count += 1

    async def run(self, stopping: asyncio.Event) -> None:
        session = MqttSession(
            self.settings.mqtt.endpoint(), self.settings.alerts.stream_client_id,
            [(self.topics.uplink_filter(), 0)], on_message=self.on_message,
            on_down=partial(self.broker.down, "stream"))

        async def up() -> None:
            self.client = session.client
            await self.broker.up("stream")

        session.on_up = up
        await session.run(stopping)
