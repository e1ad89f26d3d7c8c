"""The broker's configuration as dolbom.stack writes it: the packet limit (docs/broker.md).
What the limit does on the real broker is tested in tests/chaos/test_oversize.py."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

from dolbom.protocol.messages import MAX_PAYLOAD
from dolbom.stack.errors import StackError
from dolbom.stack.mosquitto import MAX_PACKET_SIZE, Mosquitto


def _conf(root: Path, max_packet_size: int = MAX_PACKET_SIZE) -> list[str]:
    b = Mosquitto(Path(tempfile.mkdtemp(prefix="mosquitto-conf-", dir=root)),
                  max_packet_size=max_packet_size)
    b.prepare()
    return (b.dir / "mosquitto.conf").read_text().splitlines()


def test_the_default_packet_limit_fits_the_contracts_largest_message(tmp_path: Path) -> None:
    """Default: a limit above the contract's 64 KiB payload plus its topic and header,
    and far below Mosquitto's own default (no limit, 256 MB)."""
    assert MAX_PAYLOAD + 1024 < MAX_PACKET_SIZE <= 256 * 1024
    assert f"max_packet_size {MAX_PACKET_SIZE}" in _conf(tmp_path)


def test_the_packet_limit_is_a_setting(tmp_path: Path) -> None:
    assert "max_packet_size 16384" in _conf(tmp_path, max_packet_size=16384)
    assert not [line for line in _conf(tmp_path, max_packet_size=0)
                if line.startswith("max_packet_size")]  # 0: Mosquitto's default


def test_a_packet_limit_below_mosquittos_minimum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StackError, match="max_packet_size 19"):
        Mosquitto(tmp_path, max_packet_size=19)
