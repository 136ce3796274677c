"""Engine and sessions from a URL; schema managed by Alembic, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cache
from importlib.resources import files
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from genoshare.errors import InvalidInput
from genoshare.settings import DatabaseSettings


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
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        # A database server may close idle connections; test each one before handing it out.
        kwargs["pool_pre_ping"] = pool.pre_ping
        kwargs["pool_recycle"] = pool.pool_recycle_seconds
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
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
    if any(isinstance(value, str) and "\x00" in value for value in _flat(parameters)):
        raise InvalidInput("a value with a NUL character (\\x00, %00) in it is not accepted here")


def _flat(parameters: Any) -> Iterator[Any]:
    """Every bound value, however the driver call nests them.

    ``executemany`` does not tell the shape: SQLAlchemy's batched INSERT ... RETURNING passes one flat tuple
    of all rows' values with it set, a plain executemany a list of rows.
    """
    if isinstance(parameters, dict):
        parameters = parameters.values()
    elif not isinstance(parameters, list | tuple):
        return
    for value in parameters:
        if isinstance(value, dict | list | tuple):
            yield from _flat(value)
        else:
            yield value


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers go on while an ingest or the audit log writes; NORMAL sync is safe under WAL.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def commit_without_waiting(connection: Connection) -> None:
    """Let this transaction commit without waiting for the disk, on PostgreSQL (``synchronous_commit = off``).

    For the bookkeeping every Beacon answer writes (``DatabaseSettings.privacy_writes_wait_for_disk``): the
    durability a node on SQLite has for everything (WAL, ``synchronous=NORMAL``), at a round trip instead of a
    disk flush. Other sessions see the commit at once; a crash of the database server may lose the last
    fraction of a second of such commits, and corrupts nothing.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("SET LOCAL synchronous_commit TO OFF")


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

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back if it raises."""
        with self.sessions() as session, session.begin():
            yield session

    def dispose(self) -> None:
        self.engine.dispose()
