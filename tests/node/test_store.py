"""The schema the migrations build is the schema the code uses, on both databases."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from genoshare.node import Node
from genoshare.store.db import migrate
from genoshare.store.schema import metadata


def test_migrations_build_exactly_the_models(node: Node) -> None:
    with node.database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_migrating_twice_changes_nothing(node: Node) -> None:
    migrate(node.database.engine)
    with node.database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
