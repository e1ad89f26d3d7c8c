"""MQTT client errors, classified by what the caller must do."""

from __future__ import annotations

CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class MqttError(Exception):
    """Base class: something went wrong with the MQTT connection."""


class ConnectionLost(MqttError):
    """The connection closed or timed out: reconnect with backoff and carry on."""


class TlsError(ConnectionLost):
    """The TLS handshake failed (certificate not trusted, expired, wrong host, old TLS).

    Retried like a lost connection (a broker's certificate may be renewed), but its
    message says why, so a wrong CA file is found in the first log line.
    """


class PlaintextRefused(MqttError):
    """Credentials would cross the network in plaintext (not loopback, no TLS): fix the
    configuration; retrying cannot help."""


class ConnectRefused(MqttError):
    """The broker refused CONNECT. Codes 4 and 5 need new credentials, not retries."""

    def __init__(self, code: int) -> None:
        super().__init__(f"broker refused connection: {CONNACK_REASONS.get(code, code)}")
        self.code = code

    @property
    def retryable(self) -> bool:
        return self.code == 3


class ProtocolError(MqttError):
    """The peer sent something that is not MQTT 3.1.1: drop the connection."""


class TooManyInFlight(MqttError):
    """All 65535 packet ids await an acknowledgement: wait for acks before sending more."""
