"""Engine and sessions from a URL; schema managed by Alembic, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import itertools
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Self

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

from genoshare.errors import InvalidInput
from genoshare.settings import DatabaseSettings
from genoshare.store.pg_pool import ping_when_in_doubt


def make_engine(url: str, pool: DatabaseSettings | None = None) -> Engine:
    pool = pool or DatabaseSettings()
    kwargs: dict[str, Any] = {
        "pool_size": pool.pool_size,
        "max_overflow": pool.max_overflow,
        "pool_timeout": pool.pool_timeout_seconds,
    }
    if url.startswith("sqlite"):
        # The server's thread pool shares connections; SQLite must allow that and wait for writers.
        # No pre-ping: a file cannot drop a connection, and the ping is a statement on every checkout.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": SQLITE_WAIT_SECONDS}
        path = make_url(url).database
        if path and path != ":memory:" and not path.startswith("file:"):
            kwargs["connect_args"]["factory"] = _TurnTakingConnection
    else:
        kwargs["pool_recycle"] = pool.pool_recycle_seconds
    engine = create_engine(url, **kwargs)
    if not url.startswith("sqlite") and pool.pre_ping:
        # A database server may close connections: test one before handing it out, if it may be gone.
        ping_when_in_doubt(engine)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
        if kwargs["connect_args"].get("factory") is _TurnTakingConnection:
            path = str(Path(make_url(url).database or "").resolve())
            event.listen(engine, "connect", lambda connection, _record: connection.use_turn(write_turn(path)))
    event.listen(engine, "before_cursor_execute", _no_nul_values)
    return engine


def _no_nul_values(
    _connection: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _executemany: bool
) -> None:
    """A value with a NUL (U+0000) in it, an id sent as ``%00`` or a title, is bad input on every database.

    PostgreSQL refuses such a string outright (a 500 wherever a route looked an id up or stored a text
    unchecked); SQLite would find nothing, or store it. No value this node keeps holds one (binary data is
    bytes, JSON escapes it), so the caller is told, the same on both.
    """
    if _has_nul(parameters):
        raise InvalidInput("a value with a NUL character (\\x00, %00) in it is not accepted here")


def _has_nul(parameters: Any) -> bool:
    """Whether any bound string, however the driver call nests them, holds a NUL.

    ``executemany`` does not tell the shape: SQLAlchemy's batched INSERT ... RETURNING passes one flat tuple
    of all rows' values with it set, a plain executemany a list of rows. The values' types are collected in
    C (``map(type, ...)``) first, so an array of numbers (a Beacon answer's members and spends) costs no step
    per value: a step per value was 70 us of every answer's write.
    """
    if isinstance(parameters, dict):
        parameters = parameters.values()
    elif not isinstance(parameters, list | tuple):
        return False
    for kind in set(map(type, parameters)):
        if issubclass(kind, str):
            if any("\x00" in value for value in parameters if isinstance(value, str)):
                return True
        elif issubclass(kind, dict | list | tuple) and any(
            _has_nul(value) for value in parameters if isinstance(value, kind)
        ):
            return True
    return False


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while an ingest or the audit log writes; NORMAL sync is safe under WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    if isinstance(dbapi_connection, _TurnTakingConnection):
        cursor.execute("PRAGMA wal_autocheckpoint=0")  # checkpoints after the turn (WriteTurn.committed)
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


#: Beside a SQLite database file, after its name: the write turn's lock file and the stored keys' (empty files,
#: created by whichever process needs one first; runtime state of this machine, never backed up).
TURN_LOCK_SUFFIXES = ("-lock", "-keys-lock")
#: How long a SQLite writer waits for its turn, and then for SQLite's own lock, before "database is locked".
SQLITE_WAIT_SECONDS = 30.0
#: Statements that write (SQLite takes its write lock for them); pysqlite opens its implicit transaction
#: before the first DML statement.
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "VACUUM")


class _TurnLock:
    """A lock among this process's threads, then an ``flock`` on ``file`` among the processes that share it.

    The kernel drops the ``flock`` with a process that dies; a writer that cannot open the file (a read-only
    directory) takes the thread lock only.
    """

    def __init__(self, file: str) -> None:
        self.pid = os.getpid()
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._file: int | None = None
        with contextlib.suppress(OSError):  # a read-only directory: this process cannot write the database either
            self._file = os.open(file, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def take(self, timeout: float) -> bool:
        """Wait for the turn; False when this thread holds it already (on another connection: left to SQLite)."""
        if self.held_here():
            return False
        if not self._lock.acquire(timeout=timeout):
            raise sqlite3.OperationalError(f"database is locked (no turn to write in {timeout:.0f} s)")
        self._owner = threading.get_ident()
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_EX)
        return True

    def held_here(self) -> bool:
        return self._owner == threading.get_ident()

    def give_back(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._owner = None
        self._lock.release()


class WriteTurn(_TurnLock):
    """Whose turn it is to write one SQLite file: one write transaction at a time, in every process using it.

    SQLite lets one connection write at a time; a refused one sleeps in SQLite's busy handler with growing
    back-off (1, 2, 5, ... 100 ms a try) and tries again, however soon the lock came free. Under load that
    back-off, not the writes, made the tail: 300 requests a second held answers up to 1.4 s, and sampled
    worker threads were in the busy handler's sleep more often than anywhere else (benchmarks/load.py,
    docs/scale.md). Here a writer waits for its turn instead, and is woken the moment the one before it
    commits: a lock among this process's threads, then an ``flock`` on a file beside the database (the
    database's name and ``-lock``) among the processes that share it (a server's workers, the CLI); the
    kernel drops that lock with a process that dies. SQLite's own busy timeout stays, for writers that do
    not come through here (another program, the ``sqlite3`` shell).

    SQLite's automatic checkpoint (copying the WAL into the database, with a disk flush) runs inside the
    COMMIT that crosses its threshold, so it ran while the turn was held and every writer waited for the
    flush (sampled in a commit's ``fdatasync`` in 1 of 12 snapshots of the server under load). Connections
    that take turns have it off; after giving the turn back, every ``CHECKPOINT_COMMITS``-th writing commit
    in the process, or one that grew the WAL file by ``CHECKPOINT_BYTES`` (an ingest), runs a passive one: it
    copies what it can without holding any writer up (SQLite's own is a passive one too) and costs only the
    request that runs it the flush.
    """

    #: SQLite's default threshold is 1000 pages of WAL (4 MiB); this node's commits write a few pages each.
    CHECKPOINT_COMMITS = 256
    CHECKPOINT_BYTES = 4 << 20

    def __init__(self, path: str) -> None:
        super().__init__(path + TURN_LOCK_SUFFIXES[0])
        self.path = path
        self._commits = itertools.count(1)
        self._checkpointing = threading.Lock()
        self._wal = f"{path}-wal"
        self._wal_checked = 0

    def committed(self, connection: sqlite3.Connection) -> None:
        """After a writing commit, out of turn: a passive checkpoint when one is due (one at a time)."""
        try:
            size = os.stat(self._wal).st_size
        except OSError:
            return
        due = next(self._commits) % self.CHECKPOINT_COMMITS == 0 or size >= self._wal_checked + self.CHECKPOINT_BYTES
        if not due or not self._checkpointing.acquire(blocking=False):
            return
        try:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self._wal_checked = size
        finally:
            self._checkpointing.release()


_turns: dict[tuple[str, str], _TurnLock] = {}
_turns_lock = threading.Lock()


def write_turn(path: str) -> WriteTurn:
    """The one ``WriteTurn`` of this process for a database file (every engine on it shares it)."""
    turn = _turn("write", path, WriteTurn)
    assert isinstance(turn, WriteTurn)
    return turn


def holds_write_turn(engine: Engine) -> bool:
    """Whether this thread holds the write turn of the engine's SQLite file (always False on PostgreSQL).

    A thread in a write transaction that wrote through another connection would wait for itself.
    """
    path = engine.url.database
    if engine.dialect.name != "sqlite" or not path or path == ":memory:":
        return False
    with _turns_lock:
        turn = _turns.get(("write", str(Path(path).resolve())))
    return turn is not None and turn.held_here()


def _turn(kind: str, path: str, make: Callable[[str], _TurnLock]) -> _TurnLock:
    with _turns_lock:
        turn = _turns.get((kind, path))
        if turn is None or turn.pid != os.getpid():  # a forked child must not share its parent's lock
            turn = _turns[kind, path] = make(path)
        return turn


class _TurnTakingConnection(sqlite3.Connection):
    """A pysqlite connection that waits for its ``WriteTurn`` before it writes, and gives it back at the end.

    The turn is taken before the statement that opens a write transaction (or writes in autocommit) and given
    back once the connection is out of its transaction: after COMMIT or ROLLBACK has run, not before, so the
    next writer never meets SQLite's lock still held.
    """

    _turn: WriteTurn | None = None
    _holding = False

    def use_turn(self, turn: WriteTurn) -> None:
        self._turn = turn

    def cursor(self, factory: Any = None) -> sqlite3.Cursor:  # type: ignore[override]  # one signature for both
        return super().cursor(factory or _TurnTakingCursor)

    def before(self, statement: str) -> None:
        if self._turn is not None and not self._holding and statement.lstrip()[:7].upper().startswith(_WRITES):
            self._holding = self._turn.take(SQLITE_WAIT_SECONDS)

    def after(self) -> None:
        if self._holding and not self.in_transaction:
            self._holding = False
            assert self._turn is not None
            self._turn.give_back()

    def commit(self) -> None:
        wrote = self._holding
        try:
            super().commit()
        finally:
            self.after()
        if wrote and self._turn is not None:
            self._turn.committed(self)

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self.after()

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._holding:
                self._holding = False
                assert self._turn is not None
                self._turn.give_back()


class _TurnTakingCursor(sqlite3.Cursor):
    connection: _TurnTakingConnection

    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        self.connection.before(sql)
        try:
            return super().execute(sql, parameters)
        finally:
            self.connection.after()

    def executemany(self, sql: str, parameters: Any, /) -> Self:
        self.connection.before(sql)
        try:
            return super().executemany(sql, parameters)
        finally:
            self.connection.after()


def commit_without_waiting(connection: Connection) -> None:
    """Let this transaction commit without waiting for the disk, on PostgreSQL (``synchronous_commit = off``).

    For the bookkeeping every Beacon answer writes (``DatabaseSettings.privacy_writes_wait_for_disk``): the
    durability a node on SQLite has for everything (WAL, ``synchronous=NORMAL``), at a round trip instead of a
    disk flush. Other sessions see the commit at once; a crash of the database server may lose the last
    fraction of a second of such commits, and corrupts nothing.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


def write_first(session: Session) -> None:
    """Make the session's transaction the database's writer before it reads anything, on SQLite.

    pysqlite opens a transaction only at the first write, so what was read before it may be stale by then: a
    no-op write first takes SQLite's write lock (and the ``WriteTurn``) for the whole transaction. On
    PostgreSQL a caller locks the rows it depends on (``FOR UPDATE``) instead.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DELETE FROM pending_removals WHERE 0"))


def lock_stored_keys(session: Session, keys: Iterable[str]) -> None:
    """Hold object-store keys until the transaction ends, against a concurrent deletion of their bytes.

    Keys are content checksums, shared by every row holding the same bytes: a publication that relies on
    bytes already stored and a removal that deletes bytes no row uses take this lock on the same key, so one
    sees what the other committed. PostgreSQL: transaction-scoped advisory locks, in one order (no deadlock).
    SQLite: one lock for every key, beside the database (its name and ``-keys-lock``), not the write turn: a
    removal reads and deletes bytes holding it while other writers (Beacon answers, the audit log) go on. A
    publication takes it after its writes, holding the write turn; a removal never asks for the write turn
    while it holds it (no deadlock).
    """
    engine = session.get_bind().engine
    if engine.dialect.name != "postgresql":
        path = engine.url.database
        turn = _turn("keys", str(Path(path).resolve()) if path and path != ":memory:" else "", _keys_turn)
        if turn.take(SQLITE_WAIT_SECONDS):
            _give_back_at_end(session, turn)
        return
    for number in sorted(
        {int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True) for key in keys}
    ):
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": number})


def _keys_turn(path: str) -> _TurnLock:
    """The stored keys' lock of a database file (of this process only, for a database in memory)."""
    return _TurnLock(path + TURN_LOCK_SUFFIXES[1] if path else "")


def _give_back_at_end(session: Session, turn: _TurnLock) -> None:
    """Give ``turn`` back when the session's outermost transaction commits or rolls back."""
    held = [True]

    def ended(_session: Session, transaction: SessionTransaction) -> None:
        if transaction.parent is None and held:
            held.clear()
            turn.give_back()

    event.listen(session, "after_transaction_end", ended)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("genoshare.store") / "migrations"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


@cache
def known_revisions() -> tuple[str, tuple[str, ...]]:
    """The newest schema revision this genoshare knows, and every revision it knows (read once per process)."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    head = script.get_current_head()
    assert head is not None, "genoshare ships its migrations"
    return head, tuple(revision.revision for revision in script.walk_revisions())


def schema_problem(engine: Engine) -> tuple[str, str] | None:
    """What keeps this genoshare from using the database's schema now, and the fix; ``None`` when it is current.

    Upgrades are explicit (``genoshare db upgrade``, after a backup and a dry run): a node opened by a newer
    package is refused rather than migrated behind the operator's back, and a schema newer than this package
    knows (a downgraded package) is refused rather than misread.
    """
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    head, known = known_revisions()
    if current == (head,):
        return None
    if not current:
        return "the database has no genoshare schema", "run `genoshare db upgrade` (or `genoshare init` for a new node)"
    newer = [revision for revision in current if revision not in known]
    if newer:
        return (
            f"the database schema ({', '.join(newer)}) is newer than this genoshare knows ({head})",
            "run the genoshare version that upgraded it, or restore the backup taken before that upgrade",
        )
    return (
        f"the database schema ({', '.join(current)}) is older than this genoshare's ({head})",
        "take a backup, then run `genoshare db upgrade` (`--dry-run` lists the changes)",
    )


def migrate(engine: Engine, source_key: Callable[[str, str], str] | None = None) -> None:
    """Bring the schema to the newest migration (idempotent).

    ``source_key`` hashes a participant's source id (dataset, name) for the migration that stops keeping
    names (0011); only an older node's rows need it. After an upgrade of a database that had a schema, the
    database is compacted: freed pages (SQLite) and dead rows (PostgreSQL) would otherwise keep what a migration
    removed, such as those names, in the database's files.
    """
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    config.attributes["source_key"] = source_key
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as connection:
        before = MigrationContext.configure(connection).get_current_heads()
        connection.rollback()
        if sqlite:
            # Alembic's batch mode rebuilds a SQLite table to alter it; with foreign keys enforced, dropping
            # a table others reference fails on any database that has rows. Off for the migration only
            # (the pragma is ignored inside a transaction, so it goes first).
            connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
            connection.commit()
        try:
            with connection.begin():
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
        finally:
            if sqlite:
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
                connection.commit()
        upgraded = bool(before) and MigrationContext.configure(connection).get_current_heads() != before
        connection.rollback()
    if upgraded:
        _compact(engine)


def _compact(engine: Engine) -> None:
    """Rewrite the database's files without freed pages or dead rows (outside any transaction).

    SQLite builds with ``SECURE_DELETE`` (Debian's) zero freed pages already; others, and PostgreSQL, do not.
    """
    sqlite = engine.dialect.name == "sqlite"
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if sqlite:
                connection.exec_driver_sql("VACUUM")
                connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                connection.exec_driver_sql("VACUUM FULL")
    except SQLAlchemyError as error:
        cause = type(getattr(error, "orig", None) or error).__name__
        vacuum = "VACUUM" if sqlite else "VACUUM FULL, as the database's owner,"
        raise InvalidInput(
            f"the schema is upgraded, but compacting the database failed ({cause}): "
            f"run {vacuum} so that no freed page keeps what the upgrade removed"
        ) from None


class Database:
    """The metadata database of one node."""

    def __init__(self, url: str, pool: DatabaseSettings | None = None) -> None:
        self.engine = make_engine(url, pool)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        #: Sessions that only read (``reads``): on PostgreSQL in autocommit.
        self._reads = (
            sessionmaker(self.engine.execution_options(isolation_level="AUTOCOMMIT"), expire_on_commit=False)
            if self.engine.dialect.name == "postgresql"
            else self.sessions
        )

    def reads(self) -> Session:
        """A session that only reads, for what is read again every fraction of a second (the Beacon's caches).

        On PostgreSQL it runs in autocommit: each statement one round trip, where a transaction adds a BEGIN
        and a ROLLBACK (a cache revalidation of seven reads took twenty round trips), and each sees the
        database as of its start, as in a transaction at PostgreSQL's default READ COMMITTED level. On SQLite
        it is ``sessions()``: a read transaction, in the process, costs nothing to open.
        """
        return self._reads()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
