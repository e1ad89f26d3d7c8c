"""The audit log (DESIGN.md §6): every read and change of resident data, in a keyed chain.

Each entry stores who (actor), when, from where (client IP), what (action and the route
template) and whom (resident id), and ``hash`` = ``m1:`` + HMAC-SHA256(key, ``prev_hash``
+ its canonical content). Editing any field of any entry, or deleting or reordering
entries, breaks the chain at that entry; ``verify_chain`` names the first broken one.

The key lives outside the database (``audit_key_file``, ``audit_key``, or derived from the
API's signing key; ``AuditKey``): someone who can write the database but not read the
API's secrets cannot re-compute the chain after an edit, which a plain hash would let
them do. Entries written before the chain was keyed (64 hex digits, plain sha256) are
accepted only up to ``audit_unkeyed_until`` (an entry id the operator sets, outside the
database, when upgrading; 0 by default): any other unkeyed entry is a rewrite.

Anchoring: ``write_checkpoint`` appends the newest entry's id and hash to a file only the
operator can write (``audit_checkpoint_file``, 0600) and to the log, periodically (the
API's ``audit-checkpointer`` task). ``verify_chain`` with the checkpoints also detects
what a chain alone cannot: the newest entries dropped, or the whole log rewritten by
someone who holds the key.

Appending is serialised so the chain never forks: on PostgreSQL a transaction-scoped
advisory lock (held to commit, so instances append one after the other); on SQLite the
row is inserted before its predecessor is read, which takes the database's single write
lock first. ``prev_hash`` is also unique in the schema, so even a bug here could not
commit two successors of one entry. The entry is written in the request's own
transaction: a change and its audit entry commit together or not at all.

"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from dolbom.api.settings import ApiSettings
from dolbom.registry.models import AuditEntry, User

log = logging.getLogger(__name__)

GENESIS = "0" * 64
KEYED = "m1:"  # prefix of a keyed (HMAC-SHA256) entry hash
KEY_CONTEXT = b"dolbom audit chain v1"
AUDIT_LOCK = 0x646F6C626F6D01  # PostgreSQL advisory lock key of the audit chain
DETAIL_MAX = 2000


class AuditKey:
    """The chain's HMAC key (never printed)."""

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the audit key needs at least 32 bytes")
        self._key = key

    @classmethod
    def derived(cls, secret: str) -> AuditKey:
        """A key of its own derived from another secret (the API's signing key)."""
        return cls(hmac.new(secret.encode(), KEY_CONTEXT, hashlib.sha256).digest())

    def mac(self, data: bytes) -> str:
        return KEYED + hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def __repr__(self) -> str:
        return "AuditKey(***)"


def load_key(settings: ApiSettings) -> AuditKey:
    """The key the settings name; ValueError with one line if its file is unusable."""
    path = settings.audit_key_file
    if path is not None:
        try:
            st = path.stat()
            data = path.read_bytes().strip()
        except OSError as e:
            raise ValueError(f"audit key file {path}: {e.strerror}") from None
        if st.st_mode & 0o077:
            raise ValueError(f"audit key file {path} is mode {st.st_mode & 0o777:o}: "
                             "others may read it (chmod 600)")
        if len(data) < 32:
            raise ValueError(f"audit key file {path} holds fewer than 32 bytes")
        return AuditKey(data)
    if settings.audit_key is not None:
        return AuditKey(settings.audit_key.get_secret_value().encode())
    return AuditKey.derived(settings.jwt_secret.get_secret_value())


@dataclass(frozen=True, slots=True)
class VerifyResult:
    ok: bool
    entries: int  # entries checked
    first_bad_id: int | None = None
    reason: str = ""


def canonical(entry: AuditEntry) -> bytes:
    """The hashed content of an entry: every field but the hashes, as sorted JSON."""
    at = entry.at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds")
    return json.dumps(
        {"at": at, "actor_id": entry.actor_id, "actor": entry.actor,
         "client_ip": entry.client_ip, "action": entry.action, "route": entry.route,
         "resident_id": entry.resident_id, "detail": entry.detail},
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    ).encode()


def legacy_hash(prev_hash: str, entry: AuditEntry) -> str:
    """The unkeyed hash of entries written before the chain was keyed."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(entry)).hexdigest()


def entry_hash(key: AuditKey, prev_hash: str, entry: AuditEntry) -> str:
    return key.mac(prev_hash.encode() + b"\n" + canonical(entry))


def record(session: Session, key: AuditKey, *, actor: User, action: str,
           resident_id: int | None, client_ip: str, route: str, detail: str = "",
           at: datetime | None = None) -> AuditEntry:
    """Append one entry in the caller's transaction (committed with it)."""
    (entry,) = record_many(session, key, actor=actor, action=action,
                           resident_ids=[resident_id], client_ip=client_ip, route=route,
                           detail=detail, at=at)
    return entry


def record_many(session: Session, key: AuditKey, *, actor: User, action: str,
                resident_ids: Sequence[int | None], client_ip: str, route: str,
                detail: str = "", at: datetime | None = None) -> list[AuditEntry]:
    """Append one entry per resident (a listing), chained in order, in one lock."""
    if not resident_ids:
        return []
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK})
    when = (at or datetime.now(UTC)).astimezone(UTC)
    entries = []
    for rid in resident_ids:
        placeholder = f"pending:{uuid.uuid4().hex}"
        entries.append(AuditEntry(
            at=when, actor_id=actor.id, actor=actor.username[:64],
            client_ip=(client_ip or "-")[:64], action=action[:64], route=route[:200],
            resident_id=rid, detail=detail[:DETAIL_MAX].replace("\x00", ""),
            prev_hash=placeholder, hash=placeholder))
    session.add_all(entries)
    session.flush()  # the ids, and on SQLite the write lock, before reading the predecessor
    entries.sort(key=lambda e: e.id)
    prev = session.scalar(select(AuditEntry.hash).where(AuditEntry.id < entries[0].id)
                          .order_by(AuditEntry.id.desc()).limit(1)) or GENESIS
    for e in entries:
        e.prev_hash = prev
        e.hash = prev = entry_hash(key, prev, e)
    session.flush()
    return entries


@dataclass(frozen=True, slots=True)
class Checkpoint:
    at: str
    id: int
    hash: str
    entries: int


def latest(session: Session) -> tuple[int, str, int] | None:
    """(id, hash, number of entries) of the newest entry, or None for an empty log."""
    row = session.execute(select(AuditEntry.id, AuditEntry.hash)
                          .order_by(AuditEntry.id.desc()).limit(1)).first()
    if row is None:
        return None
    n = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    return int(row[0]), str(row[1]), int(n)


def write_checkpoint(session: Session, path: Path, now: datetime,
                     after: Checkpoint | None = None) -> Checkpoint | None:
    """Append the newest entry's id and hash to ``path`` (created 0600) and to the log;
    nothing if the log is empty or has not moved since ``after``."""
    found = latest(session)
    if found is None or (after is not None and after.id == found[0]):
        return None
    cp = Checkpoint(now.astimezone(UTC).isoformat(timespec="seconds"), *found)
    line = json.dumps({"at": cp.at, "id": cp.id, "hash": cp.hash, "entries": cp.entries},
                      separators=(",", ":"))
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(fd, 0o600)  # whatever the umask; only the operator (this user) writes it
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    log.info("audit checkpoint %s", line)
    return cp


def read_checkpoints(path: Path) -> list[Checkpoint]:
    """The checkpoints in ``path``; a line that does not parse is an error (ValueError)."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            d = json.loads(line)
            out.append(Checkpoint(str(d["at"]), int(d["id"]), str(d["hash"]),
                                  int(d["entries"])))
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}:{n}: not a checkpoint line") from None
    return out


def verify_chain(session: Session, key: AuditKey, checkpoints: Sequence[Checkpoint] = (),
                 batch: int = 1000, unkeyed_until: int = 0) -> VerifyResult:
    """Walk the whole log in order; the first entry whose link or keyed hash is wrong, or
    that disagrees with a checkpoint, fails it; so does a checkpointed entry now missing."""
    marks = {c.id: c for c in checkpoints}
    prev, n, last_id, keyed_seen = GENESIS, 0, None, False
    matched: set[int] = set()
    while True:
        stmt = select(AuditEntry).order_by(AuditEntry.id).limit(batch)
        if last_id is not None:
            stmt = stmt.where(AuditEntry.id > last_id)
        rows = list(session.scalars(stmt))
        if not rows:
            break
        for e in rows:
            n += 1
            if e.prev_hash != prev:
                return VerifyResult(False, n, e.id, "does not link to the entry before it "
                                    "(an entry was removed, reordered or its link edited)")
            if e.hash.startswith(KEYED):
                keyed_seen = True
                if not hmac.compare_digest(e.hash, entry_hash(key, e.prev_hash, e)):
                    return VerifyResult(False, n, e.id, "its content does not match its keyed "
                                        "hash (the entry was edited, or the key is wrong)")
            elif keyed_seen or e.id > unkeyed_until:
                return VerifyResult(False, n, e.id, "an unkeyed entry where the chain is keyed "
                                    "(it was re-hashed without the key)")
            elif e.hash != legacy_hash(e.prev_hash, e):
                return VerifyResult(False, n, e.id, "its content does not match its hash "
                                    "(the entry was edited)")
            mark = marks.get(e.id)
            if mark is not None:
                if mark.hash != e.hash:
                    return VerifyResult(False, n, e.id, f"differs from the checkpoint of "
                                        f"{mark.at} (the log was rewritten)")
                matched.add(e.id)
            prev = e.hash
            last_id = e.id
        session.expunge_all()  # bounded memory on a long log
    missing = [c for c in checkpoints if c.id not in matched]
    if missing:
        c = min(missing, key=lambda c: c.id)
        return VerifyResult(False, n, c.id, f"the checkpoint of {c.at} names entry {c.id}, "
                            "which is gone (entries were removed)")
    return VerifyResult(True, n)
