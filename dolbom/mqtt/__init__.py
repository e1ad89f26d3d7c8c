"""Minimal asyncio MQTT 3.1.1 client used by ingest, the simulator and tests."""

from dolbom.mqtt.client import Backoff, Client, Received, Will, retry_forever
from dolbom.mqtt.errors import (
    ConnectionLost,
    ConnectRefused,
    MqttError,
    ProtocolError,
    TooManyInFlight,
)

__all__ = [
    "Backoff",
    "Client",
    "ConnectRefused",
    "ConnectionLost",
    "MqttError",
    "ProtocolError",
    "Received",
    "TooManyInFlight",
    "Will",
    "retry_forever",
]
