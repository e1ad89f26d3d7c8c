"""Data files are private whatever the umask: the registry (personal data, password hashes)
0600 in a 0700 directory, its WAL and SHM too, the audit checkpoints 0600; a registry
left readable by others is tightened at start-up."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dolbom.api import audit
from dolbom.api.app import create_app
from dolbom.registry.db import migrate, session_factory
from dolbom.registry.models import AuditEntry
from tests.api.conftest import make_settings


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


@pytest.fixture(params=[0o022, 0o000], ids=["umask022", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    yield int(request.param)
    os.umask(old)


def test_a_new_registry_is_private(tmp_path: Path, umask: int) -> None:
    """Migrate and serve a new SQLite registry: its directory 0700, every file 0600."""
    db = tmp_path / "data" / "registry.db"
    url = f"sqlite:///{db}"
    migrate(url)
    with TestClient(create_app(make_settings(url))) as c:
        assert c.get("/health").status_code == 200
        files = list(db.parent.iterdir())
        assert db in files and any(p.name.endswith("-wal") for p in files), files
        for p in files:
            assert _mode(p) == 0o600, (p, oct(_mode(p)))
    assert _mode(db.parent) == 0o700


def test_an_existing_world_readable_registry_is_tightened_at_start_up(
        tmp_path: Path, umask: int, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "registry.db"
    url = f"sqlite:///{db}"
    migrate(url)
    db.chmod(0o644)
    caplog.set_level(logging.WARNING, logger="dolbom.registry.db")
    create_app(make_settings(url))
    assert _mode(db) == 0o600
    assert any("was mode 644" in r.getMessage() for r in caplog.records)


def test_the_checkpoint_file_and_its_directory_are_private(tmp_path: Path, umask: int) -> None:
    url = f"sqlite:///{tmp_path / 'r.db'}"
    migrate(url)
    with session_factory(url).begin() as s:
        s.add(AuditEntry(at=datetime.now(UTC), actor="x", client_ip="-", action="t",
                         route="/", detail="", prev_hash=audit.GENESIS, hash="h"))
    path = tmp_path / "anchors" / "audit.checkpoints"
    with session_factory(url)() as s:
        assert audit.write_checkpoint(s, path, datetime.now(UTC)) is not None
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
