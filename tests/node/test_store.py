"""The schema the migrations build is the schema the code uses, on both databases."""

import json

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from typer.testing import CliRunner

from genoshare.cli.main import app
from genoshare.node import Node
from genoshare.store.db import alembic_config, migrate
from genoshare.store.schema import metadata

from processes import free_port, run_cli


def test_migrations_build_exactly_the_models(node: Node) -> None:
    with node.database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), metadata)
    assert differences == []


def test_migrating_twice_changes_nothing(node: Node) -> None:
    migrate(node.database.engine)
    with node.database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []


def cli(node: Node, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        [*args, "--data-dir", str(node.settings.data_dir)],
        env={"GENOSHARE_DATABASE_URL": node.settings.database_url},
    )
    return result.exit_code, result.output


def set_revision(node: Node, revision: str) -> None:
    with node.database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :revision"), {"revision": revision})


def test_a_node_made_by_an_older_release_is_refused_until_db_upgrade(node: Node) -> None:
    with node.database.engine.begin() as connection:
        config = alembic_config(node.database.engine.url.render_as_string(hide_password=False))
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")
    for command_line in (["datasets", "list"], ["check"]):
        code, output = cli(node, *command_line)
        assert code == 1 and "Traceback" not in output, output
        lines = output.strip().splitlines()
        assert len(lines) == 1 and "older" in lines[0] and "genoshare db upgrade" in lines[0], output
    served = run_cli(
        "serve",
        "--data-dir",
        str(node.settings.data_dir),
        "--port",
        str(free_port()),
        env={"GENOSHARE_DATABASE_URL": node.settings.database_url},
        timeout=120,
    )
    assert served.returncode == 1 and "Traceback" not in served.stderr, served.stderr
    assert "genoshare db upgrade" in served.stderr.strip().splitlines()[-1], served.stderr
    with node.database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) != [], "nothing was migrated"
    code, output = cli(node, "db", "upgrade")
    assert code == 0, output
    with node.database.engine.connect() as connection:
        assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    code, output = cli(node, "datasets", "list", "--json")
    assert code == 0 and json.loads(output) == []


def test_a_schema_newer_than_this_genoshare_is_refused(node: Node) -> None:
    set_revision(node, "9999")
    for command_line in (["datasets", "list"], ["check"]):
        code, output = cli(node, *command_line)
        assert code == 1 and "Traceback" not in output, output
        lines = output.strip().splitlines()
        assert len(lines) == 1 and "newer than this genoshare knows" in lines[0], output
