"""Settings of the simulator (``DOLBOM_SIM__*``; the broker is ``DOLBOM_MQTT__*``).

Listed with their defaults in ``dolbom.example.env``. The simulator's devices
log in with their own credentials from the plan file; ``mqtt.username`` and
``mqtt.password`` (a service account) are not used by it.
"""

from __future__ import annotations

import zoneinfo
from pathlib import Path

from pydantic import BaseModel, Field, field_validator

from dolbom.files import runtime_root
from dolbom.settings import BaseServiceSettings


class SimOptions(BaseModel):
    speed: float = Field(60.0, gt=0, le=100_000)  # routine clock vs real time
    random_incident_rate: float = Field(0.0, ge=0, le=3600)  # per home per real hour
    # Where the simulator keeps device boot counters/batteries and its control
    # socket. Default: <runtime root>/sim (see dolbom.files.runtime_root).
    state_dir: Path | None = None
    timezone: str = "Asia/Seoul"  # the routine's time of day starts at local time here
    tick_s: float = Field(0.25, gt=0, le=10)  # how often the core is advanced
    queue_size: int = Field(256, ge=8, le=100_000)  # per device, while its link is down
    retry_initial_s: float = Field(5.0, gt=0)  # first re-send of an un-acked life-safety event
    retry_cap_s: float = Field(30.0, gt=0)  # ... then at least this often
    # The cap of each device session's reconnect backoff (dolbom.mqtt.Backoff, jittered).
    connect_backoff_cap_s: float = Field(30.0, gt=0)
    drain_s: float = Field(3.0, ge=0)  # on stop: time to flush queues before DISCONNECT
    fw: str = Field("1.0.0-sim", min_length=1, max_length=32)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r}") from None
        return v


class SimSettings(BaseServiceSettings):
    sim: SimOptions = SimOptions()

    def state_dir(self) -> Path:
        """The state directory, created 0700 (it may hold the control socket)."""
        d = self.sim.state_dir or runtime_root() / "sim"
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        return d
