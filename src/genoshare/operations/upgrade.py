"""``genoshare db upgrade``: the schema migrations a node's database lacks, listed (``--dry-run``) or applied.

Any command also applies them when it opens the node; this command says first what will change, so an
operator can take a backup and read the list before an upgrade touches the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

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


def upgrade(engine: Engine) -> list[Migration]:
    """Apply what is pending; returns what was applied."""
    todo = pending(engine)
    if todo:
        migrate(engine)
    return todo
