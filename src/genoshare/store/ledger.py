"""What the node wrote to its S3 store, as the store acknowledged it: the ETag each read is checked against.

Whoever else can write the bucket (a careless script, a compromised tool) can put other bytes under an
object's key, of the same length too, before any reader of the node has opened it: a reader pinned to the
ETag it saw at its first open would then pin the other bytes. For an encrypted object that is not caught by
Crypt4GH either: the node's public key is public, so anyone can write a valid file encrypted to it. So every
upload records the ETag the store answered with (``stored_objects``, in the node's database, which the bucket's
other writers cannot change), and a read opens an object only if its ETag is the recorded one: one HEAD per
object per process, then ranged GETs pinned to that ETag (``If-Match``), never a whole-object read.

An object with no record (stored by a genoshare before this table, or by a process that died between its
upload and the record) is read as before. Records of deleted objects stay: bytes written later under a
deleted key do not match them either.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as postgres_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from genoshare.errors import GenoshareError
from genoshare.store.db import Database, holds_write_turn
from genoshare.store.models import StoredObject

#: Told once per object and ETag in a process (the node's audit log): key, ETag found, ETag recorded.
Told = Callable[[str, str, str], None]


class ObjectChanged(GenoshareError):
    """The store holds other bytes under an object's key than the node wrote there: refused, never served."""

    status_code = 502
    code = "BadGateway"


def same_etag(one: str, other: str) -> bool:
    """ETags as S3 compares them (``If-Match``): with or without their quotes."""
    return one.strip('"') == other.strip('"')


class Ledger:
    """The recorded ETag of each object this node uploaded, in its database."""

    def __init__(self, database: Database, told: Told | None = None) -> None:
        self.database = database
        self._told = told
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def record(self, key: str, size: int, etag: str) -> None:
        """Remember what the store acknowledged for ``key`` (an upload, a rotation's rewrite).

        From a thread that holds the SQLite write turn (an ingest publishing, inside its transaction), another
        connection could not write until that transaction ends: the record is then written by a thread of its
        own, which waits for the turn.
        """
        if holds_write_turn(self.database.engine):
            threading.Thread(target=self._write, args=(key, size, etag), name="ledger", daemon=True).start()
        else:
            self._write(key, size, etag)

    def _write(self, key: str, size: int, etag: str) -> None:
        dialect = self.database.engine.dialect.name
        insert = postgres_insert if dialect == "postgresql" else sqlite_insert
        values = {"key": key, "etag": etag, "size": size}
        statement = insert(StoredObject).values(**values)
        statement = statement.on_conflict_do_update(index_elements=["key"], set_={"etag": etag, "size": size})
        with self.database.session() as session:
            session.execute(statement)

    def recorded(self, key: str) -> str | None:
        with self.database.reads() as session:
            return session.scalar(select(StoredObject.etag).where(StoredObject.key == key))

    def check(self, key: str, etag: str) -> None:
        """Raise ``ObjectChanged`` (and tell the node's stewards, once) unless ``etag`` is the one recorded."""
        recorded = self.recorded(key)
        if recorded is None or same_etag(recorded, etag):
            return
        with self._lock:
            first = (key, etag) not in self._reported
            self._reported.add((key, etag))
        if first and self._told is not None:
            self._told(key, etag, recorded)
        raise ObjectChanged(
            "the object store holds other bytes for this file than the node stored (changed outside the node): "
            "not served; the node's stewards see it in its audit log"
        )
