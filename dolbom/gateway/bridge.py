"""What a bridge is to the gateway: it translates extra local topics into children's
contract-v1 messages and delivers their downlink (Zigbee2MQTT, ``dolbom.gateway.z2m``)."""

from __future__ import annotations

from typing import Protocol

from dolbom.gateway.classify import Refused
from dolbom.gateway.queue import Item
from dolbom.mqtt import Received


class Bridge(Protocol):
    """A translator of extra local topics into children's contract-v1 messages."""

    def filters(self) -> list[tuple[str, int]]: ...

    def handles(self, topic: str) -> bool: ...

    def translate(self, topic: str, payload: bytes, rx_ms: int,
                  live: bool) -> list[Item] | Refused: ...

    async def downlink(self, msg: Received) -> bool:
        """Deliver a downlink message to a child it owns; False: not its child."""
