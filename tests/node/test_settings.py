"""Where a node's settings come from, and that a forgotten variable cannot switch it to an empty database."""

from __future__ import annotations

from pathlib import Path

import pytest

from genoshare.settings import CONFIG_FILE, DEFAULT_DATABASE_FILE, load_settings

from processes import run_cli

PRODUCTION = "postgresql+psycopg://genoshare@production.invalid/genoshare"


def test_an_argument_in_code_wins_over_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENOSHARE_DATABASE_URL", PRODUCTION)
    monkeypatch.setenv("GENOSHARE_NODE_NAME", "from the environment")
    settings = load_settings(tmp_path, database_url=f"sqlite:///{tmp_path / 'test.db'}")
    assert settings.database_url == f"sqlite:///{tmp_path / 'test.db'}"
    # What the code does not give still comes from the environment.
    assert settings.node_name == "from the environment"


def test_the_environment_wins_over_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / CONFIG_FILE).write_text('node_name = "from the file"\norganization = "Filed Institute"\n')
    monkeypatch.setenv("GENOSHARE_NODE_NAME", "from the environment")
    settings = load_settings(tmp_path)
    assert (settings.node_name, settings.organization) == ("from the environment", "Filed Institute")


def _without_database_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENOSHARE_DATABASE_URL", raising=False)
    monkeypatch.delenv("GENOSHARE_DATA_DIR", raising=False)


def test_init_keeps_the_database_url_given_by_the_environment(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_database_variable(monkeypatch)
    node = tmp_path / "node"
    env = {"GENOSHARE_DATABASE_URL": database_url}
    assert run_cli("init", "--data-dir", str(node), env=env).returncode == 0
    created = run_cli(
        "datasets", "create", "kept", "--title", "T", "--custodian", "C", "--duo", "GRU", "-d", str(node), env=env
    )
    assert created.returncode == 0, created.stderr
    # Later, the operator forgets the variable: the node still reaches its own database.
    listed = run_cli("datasets", "list", "--json", "-d", str(node))
    assert listed.returncode == 0, listed.stderr
    assert '"kept"' in listed.stdout
    assert not (node / DEFAULT_DATABASE_FILE).exists()


def test_init_takes_the_database_url_as_an_option(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _without_database_variable(monkeypatch)
    node = tmp_path / "node"
    made = run_cli("init", "--data-dir", str(node), "--database-url", database_url)
    assert made.returncode == 0, made.stderr
    assert load_settings(node).database_url == database_url
    assert run_cli("audit", "verify", "-d", str(node)).returncode == 0


def test_a_node_on_another_database_is_not_given_a_fresh_sqlite_one(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A node whose config does not name its database (made by an older genoshare) and a forgotten variable."""
    _without_database_variable(monkeypatch)
    node = tmp_path / "node"
    assert run_cli("init", "--data-dir", str(node), "--database-url", database_url).returncode == 0
    (node / CONFIG_FILE).write_text("")
    for command in (["datasets", "list"], ["serve", "--port", "1"], ["init"]):
        result = run_cli(*command, "--data-dir", str(node))
        assert result.returncode == 1, command
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert "does not exist" in result.stderr and "GENOSHARE_DATABASE_URL" in result.stderr
        assert not (node / DEFAULT_DATABASE_FILE).exists(), command


def test_a_bad_database_url_is_one_line(tmp_path: Path) -> None:
    result = run_cli("init", "--data-dir", str(tmp_path / "node"), "--database-url", "not a url")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "database_url" in result.stderr and len(result.stderr.strip().splitlines()) == 1
