"""Statements a process sends its metadata database, and the PostgreSQL round trips they cost.

A latency measured on a shared machine says as much about the neighbours as about the node; the work one
Beacon answer asks of its database does not depend on load. The counts are taken in the process that makes
them, through SQLAlchemy's hooks, the way psycopg talks to the server: every statement is a round trip, and
so are the ``BEGIN`` psycopg sends before the first statement of a transaction, the ``COMMIT`` or ``ROLLBACK``
of a transaction that is open (psycopg sends none for one that is not), and the pool's ping. SQLite runs in
the process: its statements cost no round trip.

``Counts(path)`` keeps the counts in a file mapped into memory, so that a benchmark reads a server child's
counts while it runs; ``Counts()`` keeps them in this process (a test's).
"""

from __future__ import annotations

import mmap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from psycopg.pq import TransactionStatus
from sqlalchemy import event
from sqlalchemy.dialects.postgresql._psycopg_common import _PGDialect_common_psycopg
from sqlalchemy.engine import Connection, Engine

_STATEMENTS, _ROUND_TRIPS = 0, 1


class Counts:
    """Statements and round trips so far (in a file shared with another process when ``path`` is given)."""

    def __init__(self, path: Path | None = None) -> None:
        if path is None:
            self._buffer: mmap.mmap | bytearray = bytearray(16)
        else:
            if not path.exists() or path.stat().st_size != 16:
                path.write_bytes(bytes(16))
            with path.open("r+b") as file:
                self._buffer = mmap.mmap(file.fileno(), 16)
        self._slots = memoryview(self._buffer).cast("q")

    @property
    def statements(self) -> int:
        return int(self._slots[_STATEMENTS])

    @property
    def round_trips(self) -> int:
        return int(self._slots[_ROUND_TRIPS])

    def add(self, statements: int, round_trips: int) -> None:
        self._slots[_STATEMENTS] += statements
        self._slots[_ROUND_TRIPS] += round_trips


_counting: list[Counts] = []


def count_into(counts: Counts) -> None:
    """Count every statement and round trip of this process into ``counts`` from now on."""
    _install()
    _counting[:] = [counts]


@contextmanager
def counted() -> Iterator[Counts]:
    """Counts of what this process sends its databases inside the block."""
    _install()
    counts = Counts()
    _counting.append(counts)
    try:
        yield counts
    finally:
        _counting.remove(counts)


def _add(statements: int, round_trips: int) -> None:
    for counts in _counting:
        counts.add(statements, round_trips)


def _statement(
    connection: Connection, _cursor: Any, _statement: str, _parameters: Any, _context: Any, _many: bool
) -> None:
    if connection.dialect.name != "postgresql":
        _add(1, 0)
        return
    raw = connection.connection.dbapi_connection
    begins = not raw.autocommit and raw.info.transaction_status == TransactionStatus.IDLE  # type: ignore[union-attr]
    _add(1, 2 if begins else 1)


def _ends_transaction(original: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def counted_end(dialect: Any, dbapi_connection: Any) -> Any:
        raw = getattr(dbapi_connection, "dbapi_connection", dbapi_connection)  # the pool's proxy, or psycopg's
        if raw.info.transaction_status != TransactionStatus.IDLE:
            _add(0, 1)
        return original(dialect, dbapi_connection)

    return counted_end


def _ping(original: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def counted_ping(dialect: Any, dbapi_connection: Any) -> bool:
        _add(0, 1)
        return original(dialect, dbapi_connection)

    return counted_ping


_installed: list[bool] = []


def _install() -> None:
    if _installed:
        return
    event.listen(Engine, "before_cursor_execute", _statement)
    psycopg_dialect: Any = _PGDialect_common_psycopg
    psycopg_dialect.do_commit = _ends_transaction(psycopg_dialect.do_commit)
    psycopg_dialect.do_rollback = _ends_transaction(psycopg_dialect.do_rollback)
    psycopg_dialect.do_ping = _ping(psycopg_dialect.do_ping)
    _installed.append(True)
