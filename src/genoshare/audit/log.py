"""An append-only, hash-chained log in the metadata database.

Each entry's hash covers the previous entry's hash and all of its own fields, so editing, removing or
reordering any entry breaks the chain from that point on, and ``verify`` names the first broken entry.
Appends lock the single ``audit_head`` row (``UPDATE ... RETURNING``), which serialises concurrent writers
in every process on SQLite and PostgreSQL alike.  Cutting entries off the *end* of the chain cannot be
seen from inside the database; operators who need that anchor the head (``genoshare audit head``)
somewhere else, e.g. in a daily signed e-mail.

Entries never hold genotypes or tokens: actors are passport subjects, resources are ids.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from genoshare.store.db import Database
from genoshare.store.models import AuditEvent, AuditHead

GENESIS = "0" * 64
# Appends run on every ticket and data read: statements built once and executed on a Core connection cost
# a fifth of the ORM unit of work (whose statement construction and flush dominated, not SQLite).
_ADVANCE_HEAD = (
    update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + 1).returning(AuditHead.seq, AuditHead.hash)
)
_INSERT_EVENT = insert(AuditEvent)
_SET_HEAD_HASH = update(AuditHead).where(AuditHead.id == 1).values(hash=bindparam("head_hash"))


@dataclass(frozen=True)
class Entry:
    actor: str
    action: str
    resource: str
    decision: str
    reason: str = ""
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainReport:
    entries: int
    ok: bool
    head: str
    first_bad_seq: int | None = None
    problem: str = ""


def _entry_hash(prev_hash: str, seq: int, at: datetime, entry: Entry) -> str:
    payload = json.dumps(
        {
            "prev": prev_hash,
            "seq": seq,
            "at": _canonical_time(at),
            "actor": entry.actor,
            "action": entry.action,
            "resource": entry.resource,
            "decision": entry.decision,
            "reason": entry.reason,
            "details": dict(entry.details),
        },
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def _canonical_time(at: datetime) -> str:
    # SQLite hands datetimes back without a zone: hash them as UTC microseconds either way.
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class AuditLog:
    def __init__(self, database: Database) -> None:
        self.database = database

    def ensure_head(self) -> None:
        with self.database.session() as session:
            if session.get(AuditHead, 1) is None:
                session.add(AuditHead(id=1, seq=0, hash=GENESIS))

    def record(self, entry: Entry) -> int:
        """Append one entry and return its sequence number."""
        with self.database.engine.begin() as connection:
            row = connection.execute(_ADVANCE_HEAD).one_or_none()
            if row is None:
                raise RuntimeError("audit log not initialised: run `genoshare init`")
            seq, prev_hash = row
            at = datetime.now(UTC)
            digest = _entry_hash(prev_hash, seq, at, entry)
            connection.execute(
                _INSERT_EVENT,
                {
                    "seq": seq,
                    "at": at,
                    "actor": entry.actor,
                    "action": entry.action,
                    "resource": entry.resource,
                    "decision": entry.decision,
                    "reason": entry.reason,
                    "details": dict(entry.details),
                    "prev_hash": prev_hash,
                    "hash": digest,
                },
            )
            connection.execute(_SET_HEAD_HASH, {"head_hash": digest})
            return int(seq)

    def entries(self, *, resource_prefix: str | None = None, actor: str | None = None) -> Iterator[AuditEvent]:
        with self.database.sessions() as session:
            query = select(AuditEvent).order_by(AuditEvent.seq)
            if resource_prefix is not None:
                query = query.where(AuditEvent.resource.startswith(resource_prefix, autoescape=True))
            if actor is not None:
                query = query.where(AuditEvent.actor == actor)
            yield from session.scalars(query.execution_options(yield_per=1000))

    def verify(self) -> ChainReport:
        """Walk the chain from the start, recomputing every hash."""
        with self.database.sessions() as session:
            head = session.get(AuditHead, 1)
            expected_prev, expected_seq, count = GENESIS, 1, 0
            for event in session.scalars(select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=1000)):
                count += 1
                if event.seq != expected_seq:
                    return ChainReport(
                        count,
                        False,
                        expected_prev,
                        expected_seq,
                        f"entry {expected_seq} is missing (next present is {event.seq})",
                    )
                if event.prev_hash != expected_prev:
                    return ChainReport(
                        count,
                        False,
                        expected_prev,
                        event.seq,
                        f"entry {event.seq} does not follow entry {event.seq - 1}",
                    )
                entry = Entry(event.actor, event.action, event.resource, event.decision, event.reason, event.details)
                if _entry_hash(event.prev_hash, event.seq, event.at, entry) != event.hash:
                    return ChainReport(count, False, expected_prev, event.seq, f"entry {event.seq} was altered")
                expected_prev, expected_seq = event.hash, event.seq + 1
            if head is None or head.seq != expected_seq - 1 or head.hash != expected_prev:
                return ChainReport(
                    count,
                    False,
                    expected_prev,
                    expected_seq,
                    "the chain's recorded head does not match its last entry (entries removed at the end?)",
                )
            return ChainReport(count, True, expected_prev)
