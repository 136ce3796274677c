"""`genoshare db upgrade`: a database made by the previous version is listed (--dry-run) then migrated."""

from __future__ import annotations

import json
from pathlib import Path

from alembic import command
from sqlalchemy import create_engine, text
from typer.testing import CliRunner

from genoshare.cli.main import app
from genoshare.store.db import alembic_config

#: The schema of the previous release (before clinical use, 0008).
PREVIOUS = "0007"


def run(data_dir: Path, database_url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app, ["db", "upgrade", *args, "--data-dir", str(data_dir)], env={"GENOSHARE_DATABASE_URL": database_url}
    )
    return result.exit_code, result.output


def revision(database_url: str) -> str:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text("SELECT version_num FROM alembic_version")).scalar_one())
    finally:
        engine.dispose()


def test_a_previous_schema_is_listed_then_upgraded(tmp_path: Path, database_url: str) -> None:
    node = tmp_path / "node"
    (node / "keys").mkdir(parents=True)
    command.upgrade(alembic_config(database_url), PREVIOUS)
    code, output = run(node, database_url, "--dry-run", "--json")
    assert code == 0, output
    listed = json.loads(output)
    assert listed and listed[0]["revision"] == "0008" and "linical" in listed[0]["summary"]
    assert revision(database_url) == PREVIOUS, "a dry run changes nothing"
    code, output = run(node, database_url)
    assert code == 0 and "applied 0008" in output, output
    assert revision(database_url) != PREVIOUS
    code, output = run(node, database_url, "--dry-run")
    assert code == 0 and "up to date" in output
