"""Secrets and dependencies (TESTPLAN S-12): nothing secret in the repository, passwords
only as slow hashes, credential files readable by their owner only, no python-jose.

`pip-audit` (known vulnerabilities of the installed packages) needs the advisory database
online and is not run here: docs/reliability.md gives the command."""

from __future__ import annotations

import importlib.metadata
import re
import stat
import subprocess
from pathlib import Path

import pytest

from dolbom.stack.stack import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.security]
REPO = Path(__file__).resolve().parents[2]
SECRET_PATTERNS = {
    "private key": rb"-----BEGIN [A-Z ]*PRIVATE KEY-----",
    "AWS access key": rb"\bAKIA[0-9A-Z]{16}\b",
    "GitHub token": rb"\bgh[pousr]_[A-Za-z0-9]{36}\b",
    "Slack token": rb"\bxox[abprs]-[A-Za-z0-9-]{10,}",
    "JWT": rb"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
    "password in a URL": rb"[a-z+]+://[^/\s:@'\"{}]+:(?!PASSWORD@|password@|\{)[^/\s@'\"{}]{6,}@",
}
SECRET_FILES = re.compile(r"(^|/)(\.env|secrets\.json|passwd|.*\.(key|pem|p12|pfx))$")


def tracked() -> list[str]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True,
                         check=True).stdout
    return [p for p in out.decode().split("\0") if p]


def test_no_secret_in_the_repository() -> None:
    """No key, token or credential-bearing URL in any tracked file, and no file that
    holds secrets (keys, .env, the stack's secrets.json, a broker passwd) is tracked."""
    files = tracked()
    assert len(files) > 100  # we are looking at the repository
    assert [f for f in files if SECRET_FILES.search(f)] == []
    found = []
    for f in files:
        path = REPO / f
        if not path.is_file() or path.stat().st_size > 5_000_000:
            continue
        data = path.read_bytes()
        found += [(f, what) for what, rx in SECRET_PATTERNS.items() if re.search(rx, data)]
    assert found == []


def test_the_example_settings_carry_no_secret() -> None:
    """Every password, token and key option in dolbom.example.env is empty."""
    lines = (REPO / "dolbom.example.env").read_text().splitlines()
    secret = [ln for ln in lines if not ln.startswith("#") and "=" in ln
              and re.search(r"PASSWORD|SECRET|TOKEN|_KEY=", ln.split("=", 1)[0])]
    assert len(secret) >= 5
    assert [ln for ln in secret if ln.split("=", 1)[1].strip()] == []


def test_no_python_jose() -> None:
    """python-jose (unmaintained, CVE-2024-33663/33664) is neither installed nor declared."""
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution("python-jose")
    assert "jose" not in (REPO / "pyproject.toml").read_text().lower()


def test_login_passwords_are_argon2id_hashes() -> None:
    """The console's passwords are stored as argon2id hashes, salted (two hashes of one
    password differ), never as the password."""
    from dolbom.api.auth import hash_password, verify_password

    a, b = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert a.startswith("$argon2id$") and a != b and "correct horse" not in a
    assert verify_password(a, "correct horse battery")
    assert not verify_password(a, "correct horse batterY")


@pytest.mark.integration
def test_credential_files_are_readable_by_their_owner_only(stack: Stack) -> None:
    """The broker's passwd and ACL, the stack's generated passwords and the CA's key are
    mode 0600; passwd holds PBKDF2-SHA512 ($7$) hashes, never a password."""
    from dolbom.registry import service as registry
    from dolbom.registry.db import session_factory

    with session_factory(stack.database_url).begin() as s:
        registry.add_site(s, "s12", "s12")
        registry.add_home(s, "hs12", "s12")
        _, device_pw = registry.add_device(s, "ms-s12", "s12", "hs12", "multisensor")
    stack.sync_broker()
    paths = [stack.mosquitto.dir / "passwd", stack.mosquitto.dir / "acl",
             stack.dir / "secrets.json", stack.ca_dir / "ca.key"]
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths}
    assert modes == dict.fromkeys(modes, 0o600), modes
    entries = dict(ln.split(":", 1) for ln in
                   (stack.mosquitto.dir / "passwd").read_text().splitlines() if ln)
    assert "ms-s12" in entries and len(entries) >= 4
    assert all(h.startswith("$7$") for h in entries.values())
    text = (stack.mosquitto.dir / "passwd").read_text()
    assert device_pw not in text
    assert all(pw not in text for pw in stack.secrets.mqtt.values())
