"""An append-only, keyed hash chain in the metadata database.

Each entry's hash is an HMAC-SHA256, under the node's audit key, of the previous entry's hash and all of its
own fields, so editing, removing or reordering any entry breaks the chain from that point on, and ``verify``
names the first broken entry.  The key lives in the node's key directory (``keys/audit.key``, 0600), not in
the database: someone who can write the database but not read the key cannot recompute the hashes after an
edit (with a plain SHA-256 chain they could, and the edit went unseen).

The key is never made implicitly: ``genoshare init`` makes it for a new node, and a chain written before
keys existed is keyed only by the operator's ``genoshare audit adopt``, which verifies it with the old,
unkeyed formula, re-hashes it and appends an entry saying so.  Nothing in the database can tell a node that
was never keyed from one whose key was deleted (whoever deleted it may also have rewritten the database as
a valid unkeyed chain), so a missing key is a refusal, for ``verify`` and for every append, never a new key.

Cutting entries off the *end* (and moving the head back) cannot be seen from inside the database, keyed or
not.  ``signed_head`` exports the head signed with the node's key, to keep elsewhere; ``verify_anchor``
then finds a chain that no longer reaches that head, or reaches it with other entries
(``genoshare audit head --export`` and ``genoshare audit verify --head``).

Appends lock the single ``audit_head`` row (``UPDATE ... RETURNING``), which serialises concurrent writers
in every process on SQLite and PostgreSQL alike.  Entries never hold genotypes or tokens: actors are
passport subjects, resources are ids.

``record`` commits in groups: the entries that callers in one process hand in while a group is being written
are written next, together, in one transaction (one head update, one commit, one disk flush on PostgreSQL),
by the first of those callers.  Under load every Beacon answer, DRS access and htsget ticket appends an
entry; one transaction each kept SQLite's single writer busy for a sixth of the server's time and made the
others queue behind it.  What a caller was promised stays: ``record`` returns only once its entry is
committed (an answer is never released before its entry is in the database), a group is all or nothing (a
crash mid-group leaves the chain as it was before the group), and an entry that cannot be written fails its
own caller only: a failed group is written again one entry at a time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from sqlalchemy import Connection, bindparam, insert, select, update

from genoshare.errors import Unavailable
from genoshare.store.db import Database
from genoshare.store.models import AuditEvent, AuditHead

GENESIS = "0" * 64
# Appends run on every ticket and data read: statements built once and executed on a Core connection cost
# a fifth of the ORM unit of work (whose statement construction and flush dominated, not SQLite).
_ADVANCE_HEAD = (
    update(AuditHead)
    .where(AuditHead.id == 1)
    .values(seq=AuditHead.seq + bindparam("entries"))
    .returning(AuditHead.seq, AuditHead.hash)
)
_INSERT_EVENT = insert(AuditEvent)
_SET_HEAD_HASH = update(AuditHead).where(AuditHead.id == 1).values(hash=bindparam("head_hash"))
#: Locks the head row without changing it: making the key (and adopting an unkeyed chain) runs under it.
_LOCK_HEAD = update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq).returning(AuditHead.seq)
_READ_HEAD = select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)
KEY_BYTES = 32
#: The most entries one group writes: its INSERT binds 11 values each, under SQLite's limit of 32766.
MAX_GROUP = 256
HEAD_TYPE = "genoshare-audit-head"


class AuditKeyError(Unavailable):
    """The audit key is missing, cannot be read, or cannot be made: the chain can be neither checked nor grown."""


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


#: Every column of ``audit_events`` but the hash itself. The hash covers all of them, so a column added to the
#: table is protected at once (and an insert that does not fill it fails, it is not skipped).
STORED_FIELDS = tuple(column.key for column in AuditEvent.__table__.columns if column.key != "hash")
#: Names the hash has always used in its payload where they differ from the column's (chains already written
#: must keep verifying).
_PAYLOAD_NAMES = {"prev_hash": "prev"}


def _stored_fields(seq: int, at: datetime, prev_hash: str, entry: Entry) -> dict[str, Any]:
    """The row an append inserts (with its hash): the one place that maps an ``Entry`` onto the columns."""
    return {
        "seq": seq,
        "at": at,
        "actor": entry.actor,
        "action": entry.action,
        "resource": entry.resource,
        "decision": entry.decision,
        "reason": entry.reason,
        "details": dict(entry.details),
        "prev_hash": prev_hash,
    }


def _entry_hash(key: bytes | None, fields: Mapping[str, Any]) -> str:
    """HMAC-SHA256 of ``STORED_FIELDS`` under ``key``; plain SHA-256 (chains written before keys) when None."""
    payload = {_PAYLOAD_NAMES.get(name, name): fields[name] for name in STORED_FIELDS}
    payload["at"] = _canonical_time(payload["at"])
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str).encode()
    if key is None:
        return hashlib.sha256(encoded).hexdigest()
    return hmac.new(key, encoded, hashlib.sha256).hexdigest()


def _fields_of(event: AuditEvent | _Event) -> dict[str, Any]:
    return {name: getattr(event, name) for name in STORED_FIELDS}


def _escaped(entry: Entry) -> Entry:
    """``entry`` with its texts' control characters escaped (see ``AuditLog.record``)."""
    return Entry(
        _printable(entry.actor),
        _printable(entry.action),
        _printable(entry.resource),
        _printable(entry.decision),
        _printable(entry.reason),
        entry.details,
    )


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else char.encode("unicode_escape").decode("ascii") for char in text)


def _canonical_time(at: datetime) -> str:
    # SQLite hands datetimes back without a zone: hash them as UTC microseconds either way.
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Pending:
    """An entry handed to ``record``, until its group is committed (or has failed)."""

    __slots__ = ("entry", "error", "finished", "seq", "woken")

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.seq = 0
        self.error: BaseException | None = None
        self.finished = False
        #: Set when the entry is finished, or when its caller is to write the next group.
        self.woken = threading.Event()


class AuditLog:
    def __init__(self, database: Database, key_file: Path) -> None:
        self.database = database
        self.key_file = Path(key_file)
        self._key: bytes | None = None
        self._key_lock = threading.Lock()
        #: Entries waiting for the next group, and whether a caller is writing a group now.
        self._queued: list[_Pending] = []
        self._writing = False
        self._queue_lock = threading.Lock()

    def ensure_head(self) -> None:
        """Create the chain's head row (``genoshare init``); the key is made apart, by ``create_key``."""
        with self.database.session() as session:
            if session.get(AuditHead, 1) is None:
                session.add(AuditHead(id=1, seq=0, hash=GENESIS))

    def key(self) -> bytes:
        """The node's audit key; a missing one is an error, never made here (see the module's docstring)."""
        if self._key is not None:
            return self._key
        with self._key_lock:
            if self._key is None:
                key = self._read_key()
                if key is None:
                    raise AuditKeyError(
                        f"the audit key {self.key_file} is missing: restore it from the node's backup "
                        "(only a node made before audit keys existed runs `genoshare audit adopt` instead)"
                    )
                self._key = key
            return self._key

    def _read_key(self) -> bytes | None:
        try:
            raw = self.key_file.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as error:  # unreadable (permissions, a directory in its place): never "no key yet"
            raise AuditKeyError(f"cannot read the audit key {self.key_file}: {error.strerror}") from error
        if len(raw) != KEY_BYTES:
            raise AuditKeyError(f"{self.key_file} is not an audit key ({len(raw)} bytes, expected {KEY_BYTES})")
        return raw

    def create_key(self) -> None:
        """Key a new node's chain (``genoshare init``): only one that has no entries, so nothing is vouched for."""
        with self.database.engine.begin() as connection:
            if connection.execute(_LOCK_HEAD).one_or_none() is None:
                raise RuntimeError("audit log not initialised: run `genoshare init`")
            if self._read_key() is not None:
                return
            if connection.execute(select(AuditEvent.seq).limit(1)).first() is not None:
                raise AuditKeyError(
                    f"the audit key {self.key_file} is missing and the chain has entries: restore the key from "
                    "the node's backup (only a node made before audit keys existed runs `genoshare audit adopt`)"
                )
            self._key = self._write_key()

    def adopt(self, operator: str) -> ChainReport:
        """Key a chain written before keys existed, after it verified unkeyed; the last entry records it.

        The operator's explicit step: it would bless a database rewritten as a valid unkeyed chain too, which
        is why nothing runs it implicitly and the entry it appends (``audit.adopt``) stays in the chain.
        """
        with self.database.engine.begin() as connection:
            if connection.execute(_LOCK_HEAD).one_or_none() is None:
                raise RuntimeError("audit log not initialised: run `genoshare init`")
            if self._read_key() is not None:
                raise AuditKeyError(f"the chain is already keyed ({self.key_file} exists): nothing to adopt")
            head = connection.execute(_READ_HEAD).one_or_none()
            events = [_row_event(row) for row in connection.execute(select(AuditEvent).order_by(AuditEvent.seq))]
            legacy = _walk(None, events, head)
            if not legacy.ok:
                raise AuditKeyError(
                    f"the chain is not a valid unkeyed one ({legacy.problem}): not adopted; restore the audit "
                    "key from the node's backup"
                )
            key = self._write_key()
            prev = GENESIS
            for event in events:
                digest = _entry_hash(key, {**_fields_of(event), "prev_hash": prev})
                connection.execute(
                    update(AuditEvent).where(AuditEvent.seq == event.seq).values(prev_hash=prev, hash=digest)
                )
                prev = digest
            connection.execute(_SET_HEAD_HASH, {"head_hash": prev})
            note = Entry(
                operator,
                "audit.adopt",
                "audit",
                "permit",
                "a chain written before audit keys, verified unkeyed, re-hashed under a new key",
                {"entries": legacy.entries, "unkeyed_head": legacy.head},
            )
            self._append(connection, key, [note])
            self._key = key
        return self.verify()

    def _write_key(self) -> bytes:
        key = secrets.token_bytes(KEY_BYTES)
        self.key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # Written aside and linked into place, so another process never reads a partly written key, and
        # linking fails if one appeared meanwhile (no key is ever replaced).
        staged = self.key_file.with_name(f".{self.key_file.name}.{secrets.token_hex(8)}")
        descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(key)
                handle.flush()
                os.fsync(handle.fileno())
            os.link(staged, self.key_file)
        finally:
            staged.unlink()
        return key

    def record(self, entry: Entry) -> int:
        """Append one entry and return its sequence number, once it is committed (in a group, module docstring).

        Texts may quote what a client sent (a path, a refused id): control characters are written escaped,
        so a NUL cannot fail the write on PostgreSQL nor a newline forge a line of ``audit report``.
        """
        key = self.key()
        mine = _Pending(_escaped(entry))
        with self._queue_lock:
            self._queued.append(mine)
            writes = not self._writing
            self._writing = True
        if not writes:
            mine.woken.wait()
        if not mine.finished:  # this caller writes the next group, its own entry first
            self._write_group(key)
        if mine.error is not None:
            raise mine.error
        return mine.seq

    def _write_group(self, key: bytes) -> None:
        """Commit every queued entry, then hand the writing on to the first caller queued meanwhile (if any)."""
        with self._queue_lock:  # the writer's own entry is the first queued
            group, self._queued = self._queued[:MAX_GROUP], self._queued[MAX_GROUP:]
        try:
            try:
                with self.database.engine.begin() as connection:
                    seqs = self._append(connection, key, [pending.entry for pending in group])
                for pending, seq in zip(group, seqs, strict=True):
                    pending.seq = seq
            except Exception:
                if len(group) == 1:
                    raise
                # Which entry failed the group is not known: each is written alone, and fails alone.
                for pending in group:
                    try:
                        with self.database.engine.begin() as connection:
                            pending.seq = self._append(connection, key, [pending.entry])[0]
                    except Exception as error:
                        pending.error = error
        except BaseException as error:
            for pending in group:
                if not pending.seq:
                    pending.error = error
            raise
        finally:
            for pending in group:
                pending.finished = True
                pending.woken.set()
            with self._queue_lock:
                if self._queued:
                    self._queued[0].woken.set()
                else:
                    self._writing = False

    def record_in(self, connection: Connection, entry: Entry) -> int:
        """Append inside the caller's transaction: the entry commits with the change it records, or neither does."""
        return self._append(connection, self.key(), [_escaped(entry)])[0]

    @staticmethod
    def _append(connection: Connection, key: bytes, entries: list[Entry]) -> list[int]:
        """Chain ``entries`` onto the head in ``connection``'s transaction; their sequence numbers."""
        row = connection.execute(_ADVANCE_HEAD, {"entries": len(entries)}).one_or_none()
        if row is None:
            raise RuntimeError("audit log not initialised: run `genoshare init`")
        last, prev_hash = row
        first = int(last) - len(entries) + 1
        # Read after the head is locked: times never go back along the chain, across processes too.
        now = datetime.now(UTC)
        rows = []
        for seq, entry in enumerate(entries, start=first):
            fields = _stored_fields(seq, now, prev_hash, entry)
            prev_hash = _entry_hash(key, fields)
            rows.append({**fields, "hash": prev_hash})
        # One multi-row INSERT, not executemany: on SQLite each row of that is a step that gives the GIL up and
        # must win it back, while every other writer waits for this transaction.
        if len(rows) == 1:
            connection.execute(_INSERT_EVENT, rows[0])
        else:
            connection.execute(_INSERT_EVENT.values(rows))
        connection.execute(_SET_HEAD_HASH, {"head_hash": prev_hash})
        return list(range(first, first + len(entries)))

    def entries(self, *, resource_prefix: str | None = None, actor: str | None = None) -> Iterator[AuditEvent]:
        with self.database.sessions() as session:
            query = select(AuditEvent).order_by(AuditEvent.seq)
            if resource_prefix is not None:
                query = query.where(AuditEvent.resource.startswith(resource_prefix, autoescape=True))
            if actor is not None:
                query = query.where(AuditEvent.actor == actor)
            yield from session.scalars(query.execution_options(yield_per=1000))

    def verify(self) -> ChainReport:
        """Walk the chain from the start, recomputing every MAC under the node's key."""
        try:
            key = self.key()
        except AuditKeyError as error:
            return ChainReport(0, False, GENESIS, 1, str(error))
        with self.database.sessions() as session:
            head = session.execute(_READ_HEAD).one_or_none()
            events = session.scalars(select(AuditEvent).order_by(AuditEvent.seq).execution_options(yield_per=1000))
            return _walk(key, events, head)

    def signed_head(self, signing_key: ECKey, issuer: str) -> dict[str, Any]:
        """The verified head as an exportable anchor: its claims and an ES256 JWS over them by the node's key.

        Refuses a broken chain: an anchor must vouch only for a chain that verified when it was made.
        """
        report = self.verify()
        if not report.ok:
            raise AuditKeyError(f"the chain does not verify ({report.problem}): no head exported")
        claims = {
            "typ": HEAD_TYPE,
            "iss": issuer,
            "seq": report.entries,
            "hash": report.head,
            "exported_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
        payload = json.dumps(claims, sort_keys=True, separators=(",", ":"))
        token = jws.serialize_compact({"alg": "ES256", "kid": signing_key.kid}, payload, signing_key)
        return {**claims, "signature": token}

    def verify_anchor(self, anchor: Mapping[str, Any], public_key: ECKey) -> str | None:
        """Why the chain no longer holds an exported head (one line), or None when it does.

        The anchor's own signature is checked first, so a forged anchor file cannot vouch for a rewritten
        chain.  The chain may have grown since; entry ``seq`` must still be there with the anchored hash.
        """
        try:
            signed = json.loads(jws.deserialize_compact(str(anchor.get("signature", "")), public_key).payload)
        except (JoseError, ValueError, TypeError) as error:
            return f"the exported head's signature does not verify with this node's key ({error})"
        if signed.get("typ") != HEAD_TYPE or not isinstance(signed.get("seq"), int):
            return "the exported head is not a genoshare audit head"
        seq, anchored = int(signed["seq"]), str(signed.get("hash", ""))
        if seq == 0:
            return None
        with self.database.sessions() as session:
            event = session.get(AuditEvent, seq)
            last = session.get(AuditHead, 1)
        exported = signed.get("exported_at", "?")
        if event is None:
            return (
                f"the head exported at {exported} was entry {seq}, but the chain now ends at entry "
                f"{last.seq if last else 0}: entries were cut off the end"
            )
        if event.hash != anchored:
            return f"entry {seq} is not the one in the head exported at {exported}: the chain was rewritten"
        return None


@dataclass(frozen=True)
class _Event:
    seq: int
    at: datetime
    actor: str
    action: str
    resource: str
    decision: str
    reason: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


def _row_event(row: Any) -> _Event:
    return _Event(
        row.seq,
        row.at,
        row.actor,
        row.action,
        row.resource,
        row.decision,
        row.reason,
        row.details,
        row.prev_hash,
        row.hash,
    )


def _walk(key: bytes | None, events: Iterable[AuditEvent | _Event], head: Any) -> ChainReport:
    """Recompute each hash in order (under ``key``, or unkeyed when None) up to the head row, and match the head.

    ``head`` is read before the walk: entries appended while it runs lie beyond it and are left for the next.
    """
    expected_prev, expected_seq, count = GENESIS, 1, 0
    for event in events:
        if head is not None and event.seq > head.seq:
            break
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
                count, False, expected_prev, event.seq, f"entry {event.seq} does not follow entry {event.seq - 1}"
            )
        if _entry_hash(key, _fields_of(event)) != event.hash:
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
