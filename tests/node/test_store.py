"""The schema the migrations build is the schema the code uses, on both databases."""

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from typer.testing import CliRunner

from genoshare.cli.main import app
from genoshare.node import Node
from genoshare.store.db import alembic_config, migrate
from genoshare.store.schema import metadata


def test_migrations_build_exactly_the_models(node: Node) -> None:
    with node.database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_migrating_twice_changes_nothing(node: Node) -> None:
    migrate(node.database.engine)
    with node.database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def test_a_node_made_by_an_older_release_is_upgraded_by_the_next_command(node: Node) -> None:
    with node.database.engine.begin() as connection:
        config = alembic_config(node.database.engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    with node.database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) != [], "the old schema differs"
    result = CliRunner().invoke(
        app,
        ["datasets", "list", "--data-dir", str(node.settings.data_dir)],
        env={"GENOSHARE_DATABASE_URL": node.settings.database_url},
    )
    assert result.exit_code == 0, result.output
    with node.database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
