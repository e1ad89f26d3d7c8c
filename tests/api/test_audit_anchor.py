"""The audit chain is keyed (HMAC, key outside the database) and anchored (checkpoints in a
file and the log): an edit with the rest of the chain re-hashed, a truncation, and a
rewrite by someone holding the key are all detected."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from dolbom.api import audit
from dolbom.api.app import create_app
from dolbom.cli import main
from dolbom.registry.models import AuditEntry
from dolbom.settings import SettingsError
from tests.api.conftest import SECRET, World, make_settings


def _read_three(w: World) -> list[int]:
    for home in ("h1", "h2", "h3"):
        assert w.get("admin", f"/api/v1/residents/{w.residents[home]}").status_code == 200
    with w.sessions() as s:
        return list(s.scalars(select(AuditEntry.id).order_by(AuditEntry.id)))


def _rehash_from(w: World, first_id: int, make_hash: Any) -> None:
    """An attacker with the database: re-link and re-hash every entry from ``first_id``."""
    with w.sessions.begin() as s:
        rows = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id)))
        prev = audit.GENESIS
        for e in rows:
            if e.id >= first_id:
                # Placeholders first: prev_hash and hash are unique columns.
                e.prev_hash = e.hash = f"tmp:{e.id}"
        s.flush()
        for e in rows:
            if e.id >= first_id:
                e.prev_hash = prev
                e.hash = make_hash(prev, e)
            prev = e.hash


def _verify(w: World, marks: list[audit.Checkpoint] | None = None,
            unkeyed_until: int = 0) -> audit.VerifyResult:
    with w.sessions() as s:
        return audit.verify_chain(s, audit.load_key(w.settings), marks or [],
                                  unkeyed_until=unkeyed_until)


def test_entries_are_keyed(world: World) -> None:
    ids = _read_three(world)
    with world.sessions() as s:
        hashes = list(s.scalars(select(AuditEntry.hash)))
    assert len(ids) == 3 and all(h.startswith(audit.KEYED) for h in hashes)
    assert _verify(world).ok


@pytest.mark.parametrize("attack", ["plain_sha256", "wrong_key"])
def test_an_edit_with_the_rest_re_hashed_is_detected(world: World, attack: str) -> None:
    """The reported attack: UPDATE one entry and re-compute the chain after it (without the
    key: as plain sha256, or as HMAC with a key of the attacker's)."""
    ids = _read_three(world)
    with world.sessions.begin() as s:
        s.execute(text("UPDATE audit_log SET resident_id = 999 WHERE id = :id"), {"id": ids[1]})
    if attack == "plain_sha256":
        _rehash_from(world, ids[0], audit.legacy_hash)
    else:
        forged = audit.AuditKey(b"x" * 32)
        _rehash_from(world, ids[1], lambda prev, e: audit.entry_hash(forged, prev, e))
    result = _verify(world)
    assert not result.ok
    assert result.first_bad_id == (ids[0] if attack == "plain_sha256" else ids[1])


def test_checkpoints_detect_truncation_and_a_rewrite_with_the_key(
        world: World, tmp_path: Path) -> None:
    """Dropping the newest entries, or rewriting the log even with the key, disagrees with
    the checkpoints kept outside the database."""
    ids = _read_three(world)
    path = tmp_path / "anchors" / "audit.checkpoints"
    with world.sessions() as s:
        cp = audit.write_checkpoint(s, path, world.clock())
    assert cp is not None and cp.id == ids[-1] and cp.entries == 3
    assert path.stat().st_mode & 0o777 == 0o600
    marks = audit.read_checkpoints(path)
    assert _verify(world, marks).ok
    key = audit.load_key(world.settings)
    with world.sessions.begin() as s:
        s.execute(text("UPDATE audit_log SET detail = 'changed' WHERE id = :id"), {"id": ids[2]})
    _rehash_from(world, ids[2], lambda prev, e: audit.entry_hash(key, prev, e))
    assert _verify(world).ok  # the key holder's rewrite passes the chain alone...
    result = _verify(world, marks)
    assert not result.ok and result.first_bad_id == ids[2]  # ...not the checkpoint
    with world.sessions.begin() as s:
        s.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[2]})
    assert _verify(world).ok  # the newest entry dropped: the chain cannot tell
    result = _verify(world, marks)
    assert not result.ok and result.first_bad_id == ids[2] and "gone" in result.reason


def test_unkeyed_entries_only_where_the_operator_says_the_log_predates_the_key(
        world: World) -> None:
    """An upgraded log's old entries verify up to AUDIT_UNKEYED_UNTIL; no unkeyed entry
    after it, nor after a keyed one."""
    ids = _read_three(world)
    key = audit.load_key(world.settings)
    _rehash_from(world, ids[0], lambda prev, e: audit.legacy_hash(prev, e)
                 if e.id == ids[0] else audit.entry_hash(key, prev, e))
    assert not _verify(world).ok
    assert _verify(world, unkeyed_until=ids[0]).ok
    _rehash_from(world, ids[2], audit.legacy_hash)
    result = _verify(world, unkeyed_until=ids[2])
    assert not result.ok and result.first_bad_id == ids[2] and "unkeyed" in result.reason


def test_the_app_anchors_the_chain_to_its_checkpoint_file_and_the_log(
        make_world: Any, sqlite_url: str, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The API's audit-checkpointer writes the newest id and hash while the log grows."""
    path = tmp_path / "audit.checkpoints"
    caplog.set_level(logging.INFO, logger="dolbom.api.audit")
    w: World = make_world(sqlite_url, audit_checkpoint_file=path, audit_checkpoint_s=1)
    ids = _read_three(w)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        marks = audit.read_checkpoints(path) if path.exists() else []
        if marks and marks[-1].id == ids[-1]:
            break
        time.sleep(0.1)
    assert marks and marks[-1].id == ids[-1], marks
    assert any(m.getMessage().startswith("audit checkpoint") for m in caplog.records)
    assert path.stat().st_mode & 0o777 == 0o600
    assert _verify(w, marks).ok


def test_the_key_comes_from_a_private_file(tmp_path: Path, sqlite_url: str) -> None:
    """A key file others may read stops start-up; a private one is used (not the DB)."""
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(os.urandom(16).hex().encode() * 2)
    key_file.chmod(0o644)
    with pytest.raises(SettingsError, match="chmod 600"):
        create_app(make_settings(sqlite_url, audit_key_file=key_file))
    key_file.chmod(0o600)
    a = audit.load_key(make_settings(sqlite_url, audit_key_file=key_file))
    b = audit.load_key(make_settings(sqlite_url))
    probe = hashlib.sha256(b"x").digest()
    assert a.mac(probe) != b.mac(probe)


def test_cli_verifies_against_the_checkpoint_file(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    ids = _read_three(world)
    path = tmp_path / "audit.checkpoints"
    with world.sessions() as s:
        audit.write_checkpoint(s, path, world.clock())
    monkeypatch.setenv("DOLBOM_API__DATABASE_URL", world.url)
    monkeypatch.setenv("DOLBOM_API__JWT_SECRET", SECRET)
    monkeypatch.setenv("DOLBOM_API__AUDIT_CHECKPOINT_FILE", str(path))
    assert main(["api", "audit-verify"]) == 0
    assert "1 checkpoints agree" in capsys.readouterr().out
    with world.sessions.begin() as s:
        s.execute(text("DELETE FROM audit_log WHERE id = :id"), {"id": ids[-1]})
    assert main(["api", "audit-verify"]) != 0
    assert f"entry {ids[-1]}" in capsys.readouterr().err
