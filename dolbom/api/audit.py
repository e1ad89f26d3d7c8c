"""The audit log (DESIGN.md §6): every read and change of resident data, hash-chained.

Each entry stores who (actor), when, from where (client IP), what (action and the route
template) and whom (resident id), and ``hash`` = sha256(``prev_hash`` + its canonical
content). Editing any field of any entry, or deleting or reordering entries, breaks the
chain at that entry; ``verify_chain`` names the first broken one.

Appending is serialised so the chain never forks: on PostgreSQL a transaction-scoped
advisory lock (held to commit, so instances append one after the other); on SQLite the
row is inserted before its predecessor is read, which takes the database's single write
lock first. ``prev_hash`` is also unique in the schema, so even a bug here could not
commit two successors of one entry. The entry is written in the request's own
transaction: a change and its audit entry commit together or not at all.

(Like any hash chain, this detects edits and removals inside the log; dropping the newest
entries is detected only against a copy of the last hash kept elsewhere.)
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from dolbom.registry.models import AuditEntry, User

GENESIS = "0" * 64
AUDIT_LOCK = 0x646F6C626F6D01  # PostgreSQL advisory lock key of the audit chain
DETAIL_MAX = 2000


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


def entry_hash(prev_hash: str, entry: AuditEntry) -> str:
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(entry)).hexdigest()


def record(session: Session, *, actor: User, action: str, resident_id: int | None,
           client_ip: str, route: str, detail: str = "",
           at: datetime | None = None) -> AuditEntry:
    """Append one entry in the caller's transaction (committed with it)."""
    (entry,) = record_many(session, actor=actor, action=action, resident_ids=[resident_id],
                           client_ip=client_ip, route=route, detail=detail, at=at)
    return entry


def record_many(session: Session, *, actor: User, action: str,
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
        e.hash = prev = entry_hash(prev, e)
    session.flush()
    return entries


def verify_chain(session: Session, batch: int = 1000) -> VerifyResult:
    """Walk the whole log in order; the first entry whose link or hash is wrong fails it."""
    prev, n, last_id = GENESIS, 0, None
    while True:
        stmt = select(AuditEntry).order_by(AuditEntry.id).limit(batch)
        if last_id is not None:
            stmt = stmt.where(AuditEntry.id > last_id)
        rows = list(session.scalars(stmt))
        if not rows:
            return VerifyResult(True, n)
        for e in rows:
            n += 1
            if e.prev_hash != prev:
                return VerifyResult(False, n, e.id, "does not link to the entry before it "
                                    "(an entry was removed, reordered or its link edited)")
            if e.hash != entry_hash(e.prev_hash, e):
                return VerifyResult(False, n, e.id, "its content does not match its hash "
                                    "(the entry was edited)")
            prev = e.hash
            last_id = e.id
        session.expunge_all()  # bounded memory on a long log
