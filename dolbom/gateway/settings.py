"""Settings of the gateway service (``DOLBOM_GW_*``; every option in gateway/gateway.env.example).

Loaded once at start-up by ``dolbom.settings.load``; a bad value stops start-up with one
line naming the option. The central broker is reached over TLS (DESIGN.md §2; the
plaintext refusal of ``MqttSettings`` applies); the local broker is on loopback.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from dolbom.protocol import check_id
from dolbom.settings import MqttSettings


class Z2MSettings(BaseModel):
    """Zigbee2MQTT sensors as children (docs/gateway.md, "Zigbee2MQTT")."""

    enabled: bool = False
    base_topic: str = "zigbee2mqtt"
    # Zigbee2MQTT friendly name -> the child's Dolbom device id (registered in the registry).
    devices: dict[str, str] = {}
    # Time quality of the envelope the gateway gives their messages: 2 when the Pi keeps
    # NTP time (systemd-timesyncd), 0 when it may not (no network at boot, no RTC).
    tq: int = Field(2, ge=0, le=2)

    @field_validator("devices")
    @classmethod
    def _ids(cls, v: dict[str, str]) -> dict[str, str]:
        for dev in v.values():
            check_id(dev, "zigbee2mqtt child id")
        if len(set(v.values())) != len(v):
            raise ValueError("two Zigbee2MQTT devices map to the same child id")
        return v


class DiscoverySettings(BaseModel):
    """Home Assistant MQTT discovery (opt-in): published on the local broker."""

    enabled: bool = False
    prefix: str = "homeassistant"
    # child id -> its registry kind (what the device is: which entities it gets);
    # written by ``dolbom gateway provision``. A child missing here gets battery only.
    kinds: dict[str, str] = {}


class GatewaySettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DOLBOM_GW_", env_nested_delimiter="__", env_file=None, extra="ignore",
        env_ignore_empty=True,
    )
    site: str
    gateway_id: str
    # The central broker: TLS, the gateway's own credentials (user = gateway id).
    central: MqttSettings = MqttSettings()
    # The home's local Mosquitto (loopback): the gateway's local account.
    local: MqttSettings = MqttSettings()
    # Child device ids this gateway forwards; empty: every device on the local broker
    # (the central ACL refuses what is not registered to this gateway anyway).
    children: list[str] = []
    data_dir: Path = Path("/var/lib/dolbom-gateway")
    # The durable queue's bound: past it, telemetry is evicted oldest first, then other
    # non-life-safety messages; an unacknowledged life-safety event never is (counted).
    max_messages: int = Field(200_000, ge=100)
    max_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024)
    # QoS 1 publishes to the central broker awaiting their PUBACK at once.
    inflight: int = Field(64, ge=1, le=10_000)
    # Backlog (queued while the uplink was down, or older than hist_after_s) is replayed
    # with "hist": true at this rate; life-safety events are never held back by it.
    replay_rate: float = Field(200.0, gt=0)
    hist_after_s: float = Field(30.0, gt=0)
    # A life-safety event is re-sent upstream until its `ack` (DESIGN.md §3 "Delivery").
    ack_timeout_s: float = Field(30.0, gt=0)
    # The gateway's own status (its heartbeat) is re-published this often.
    status_s: float = Field(60.0, ge=1, le=3600)
    client_id: str | None = None  # default: "gw-<gateway_id>" on both brokers
    z2m: Z2MSettings = Z2MSettings()
    discovery: DiscoverySettings = DiscoverySettings()

    @field_validator("site", "gateway_id")
    @classmethod
    def _id(cls, v: str) -> str:
        return check_id(v)

    @field_validator("children")
    @classmethod
    def _children(cls, v: list[str]) -> list[str]:
        for dev in v:
            check_id(dev, "child id")
        return v

    @model_validator(mode="after")
    def _local_loopback(self) -> GatewaySettings:
        if self.local.topic_prefix != self.central.topic_prefix:
            raise ValueError("local and central topic prefixes differ")
        return self

    @property
    def cid(self) -> str:
        return self.client_id or f"gw-{self.gateway_id}"

    def child_ids(self) -> frozenset[str]:
        """Every child: the listed devices and the Zigbee2MQTT ones."""
        z = self.z2m.devices.values() if self.z2m.enabled else ()
        return frozenset([*self.children, *z])
