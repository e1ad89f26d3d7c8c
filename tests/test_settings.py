"""Settings: documented defaults match the code; bad values stop start-up with one line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from dolbom.alerts.settings import AlertsSettings
from dolbom.ingest.settings import IngestSettings
from dolbom.registry.settings import RegistrySettings
from dolbom.settings import SettingsError, load
from dolbom.sim.settings import SimSettings

EXAMPLE = Path(__file__).parent.parent / "dolbom.example.env"


def _flatten(model: type[BaseModel], prefix: str = "DOLBOM_") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out.update(_flatten(ann, f"{prefix}{name.upper()}__"))
        else:
            out[f"{prefix}{name.upper()}"] = f.default
    return out


def _documented() -> dict[str, str]:
    lines = [ln for ln in EXAMPLE.read_text().splitlines() if ln and not ln.startswith("#")]
    return dict(ln.split("=", 1) for ln in lines)


@pytest.mark.parametrize("model", [IngestSettings, RegistrySettings, SimSettings,
                                   AlertsSettings])
def test_every_option_is_documented_with_its_default(model: type[BaseModel]) -> None:
    """dolbom.example.env lists every option of every service with the code's default."""
    documented = _documented()
    for env, default in _flatten(model).items():
        assert env in documented, f"{env} is missing from dolbom.example.env"
        shown = "" if default is None else str(default)
        assert documented[env] == shown, f"{env}: example says {documented[env]!r}, code {shown!r}"


def test_example_file_loads_cleanly() -> None:
    """The example file itself is a valid configuration for every service."""
    for model in (IngestSettings, RegistrySettings, SimSettings, AlertsSettings):
        load(model, EXAMPLE)


@pytest.mark.parametrize(
    ("env", "value", "message"),
    [
        ("DOLBOM_BATCH_SIZE", "0", "batch_size (DOLBOM_BATCH_SIZE)"),
        ("DOLBOM_MQTT__PORT", "99999", "mqtt.port (DOLBOM_MQTT__PORT)"),
        ("DOLBOM_MQTT__TOPIC_PREFIX", "care/#", "topic prefix"),
        ("DOLBOM_FLUSH_INTERVAL_S", "soon", "flush_interval_s"),
    ],
)
def test_bad_setting_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, env: str, value: str,
                                       message: str) -> None:
    """A bad value stops start-up with one line that names the option."""
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as e:
        load(IngestSettings)
    text = str(e.value)
    assert message in text and "\n" not in text and text.startswith("config error:")


def test_influx_credentials_never_go_in_plaintext_off_loopback(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A password for an InfluxDB on another machine over http:// stops start-up with one
    line; https:// there, or http:// on loopback, is fine."""
    monkeypatch.setenv("DOLBOM_INFLUX__USERNAME", "ingest")
    monkeypatch.setenv("DOLBOM_INFLUX__PASSWORD", "pw")
    monkeypatch.setenv("DOLBOM_INFLUX__URL", "http://10.0.0.7:8086")
    with pytest.raises(SettingsError) as e:
        load(IngestSettings)
    assert "plaintext to 10.0.0.7 (not loopback): use an https:// URL" in str(e.value)
    assert "\n" not in str(e.value)
    for url in ("https://10.0.0.7:8086", "http://127.0.0.1:8086", "http://localhost:8086"):
        monkeypatch.setenv("DOLBOM_INFLUX__URL", url)
        assert load(IngestSettings).influx.url == url
    monkeypatch.setenv("DOLBOM_INFLUX__URL", "ftp://10.0.0.7")
    with pytest.raises(SettingsError, match="not http"):
        load(IngestSettings)


def test_missing_env_file_is_one_clear_line(tmp_path: Path) -> None:
    """Pointing at a settings file that is not there says so."""
    with pytest.raises(SettingsError, match="does not exist"):
        load(IngestSettings, tmp_path / "nope.env")
