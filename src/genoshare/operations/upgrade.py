"""``genoshare db upgrade``: the schema migrations a node's database lacks, listed (``--dry-run``) or applied.

The only way a schema changes: every other command, ``serve`` and ``check`` refuse a node whose schema is older
(or newer) than this genoshare's and name this command, so an operator takes a backup and reads the list
before an upgrade touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.node import PSEUDONYM_KEY_FILE
from genoshare.store.db import alembic_config, migrate


@dataclass(frozen=True)
class Migration:
    revision: str
    summary: str


def pending(engine: Engine) -> list[Migration]:
    """The migrations not yet applied, oldest first (all of them for an empty database)."""
    script = ScriptDirectory.from_config(alembic_config(engine.url.render_as_string(hide_password=False)))
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_heads()
    missing = []
    for revision in script.iterate_revisions("heads", current[0] if current else "base"):
        if revision.revision in current:
            continue
        summary = (revision.doc or "").strip().splitlines()[0] if revision.doc else ""
        missing.append(Migration(revision.revision, summary))
    return list(reversed(missing))


def upgrade(engine: Engine, keys_dir: Path) -> list[Migration]:
    """Apply what is pending; returns what was applied.

    The node's pseudonym key (in ``keys_dir``) hashes the participants' source ids of a node older than 0011.
    """
    todo = pending(engine)
    if todo:
        secret = keys_dir / PSEUDONYM_KEY_FILE
        migrate(engine, Pseudonymiser(secret.read_bytes()).source_key if secret.is_file() else None)
    return todo
