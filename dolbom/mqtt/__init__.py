"""Minimal asyncio MQTT 3.1.1 client used by ingest, the simulator and tests."""

from dolbom.mqtt.client import Backoff, Client, Received, Will, retry_forever
from dolbom.mqtt.errors import (
    ConnectionLost,
    ConnectRefused,
    MqttError,
    PlaintextRefused,
    ProtocolError,
    TlsError,
    TooManyInFlight,
)
from dolbom.mqtt.tls import client_context, is_loopback

__all__ = [
    "Backoff",
    "Client",
    "ConnectRefused",
    "ConnectionLost",
    "MqttError",
    "PlaintextRefused",
    "ProtocolError",
    "Received",
    "TlsError",
    "TooManyInFlight",
    "Will",
    "client_context",
    "is_loopback",
    "retry_forever",
]
