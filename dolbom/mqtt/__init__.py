"""Dolbom's asyncio MQTT 3.1.1 client and the session that keeps it connected."""

from dolbom.mqtt.backoff import Backoff, reconnect_backoff
from dolbom.mqtt.client import Client
from dolbom.mqtt.errors import (
    ConnectionLost,
    ConnectRefused,
    MqttError,
    PlaintextRefused,
    ProtocolError,
    TlsError,
    TooManyInFlight,
)
from dolbom.mqtt.packets import Received, Will
from dolbom.mqtt.session import Endpoint, MqttSession
from dolbom.mqtt.tls import client_context, is_loopback

__all__ = [
    "Backoff",
    "Client",
    "ConnectRefused",
    "ConnectionLost",
    "Endpoint",
    "MqttError",
    "MqttSession",
    "PlaintextRefused",
    "ProtocolError",
    "Received",
    "TlsError",
    "TooManyInFlight",
    "Will",
    "client_context",
    "is_loopback",
    "reconnect_backoff",
]
