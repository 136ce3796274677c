"""One configuration, documented and checked: the settings reference, `genoshare check`, a clean failed init."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from genoshare import __version__
from genoshare.node import init_node
from genoshare.operations.settings_docs import keys, reference
from genoshare.settings import Settings, load_settings

from processes import run_cli

ROOT = Path(__file__).resolve().parents[2]
#: Nothing listens on port 1: a PostgreSQL URL there cannot connect.
UNREACHABLE = "postgresql+psycopg://genoshare@127.0.0.1:1/genoshare"


def test_the_committed_settings_reference_is_current() -> None:
    committed = (ROOT / "docs" / "settings.md").read_text()
    assert committed == reference(), "run: genoshare settings-reference --output docs/settings.md"


def test_the_reference_names_every_key_with_its_variable_and_meaning() -> None:
    page = (ROOT / "docs" / "settings.md").read_text()
    for name in Settings.model_fields:
        assert f"`GENOSHARE_{name.upper()}" in page, name  # a section: its keys are GENOSHARE_SECTION__KEY
    documented = {key.name: key for key in keys()}
    # Keys the issue found only in the source, and the passphrase variable read outside the model.
    for name in ("node_id", "organization", "environment", "objects_url", "linked_issuers", "ticket_ttl_seconds"):
        assert documented[name].meaning
    assert "trusted_issuers[].jwks_file" in documented
    assert "GENOSHARE_NODE_KEY_PASSPHRASE" in page
    assert documented["organization"].default == "`Example Institute`"


def test_version() -> None:
    result = run_cli("--version")
    assert (result.returncode, result.stdout.strip()) == (0, f"genoshare {__version__}")


def test_a_postgres_url_is_one_line_with_the_url_to_write(tmp_path: Path) -> None:
    result = run_cli("init", "-d", str(tmp_path / "node"), "--database-url", "postgres://gs@db.example.org/gs")
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "postgresql+psycopg://gs@db.example.org/gs" in result.stderr
    assert not (tmp_path / "node").exists()


def test_an_unreachable_database_leaves_no_half_made_node(tmp_path: Path) -> None:
    node = tmp_path / "deep" / "node"
    result = run_cli("init", "-d", str(node), "--database-url", UNREACHABLE)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot connect" in lines[0] and "fix:" in lines[0]
    assert not (tmp_path / "deep").exists()


def test_init_removes_what_it_made_when_it_fails(tmp_path: Path) -> None:
    """Past the CLI's check (the database went away in between): keys and config made by this init go too."""
    existing = tmp_path / "node"
    existing.mkdir()
    (existing / "notes.txt").write_text("the operator's own file")
    settings = load_settings(existing, database_url=UNREACHABLE)
    with pytest.raises(Exception, match=r"127\.0\.0\.1"):
        init_node(settings)
    assert sorted(path.name for path in existing.iterdir()) == ["notes.txt"]


@pytest.mark.postgres
def test_a_wrong_postgres_password_is_named_with_its_fix(tmp_path: Path) -> None:
    admin = make_url(os.environ.get("GENOSHARE_TEST_POSTGRES_URL") or pytest.fail("needs PostgreSQL"))
    wrong = admin.set(password="not-the-password").render_as_string(hide_password=False)
    result = run_cli("init", "-d", str(tmp_path / "node"), "--database-url", wrong)
    assert result.returncode == 1
    line = result.stderr.strip()
    assert "\n" not in line and "password authentication failed" in line and "pgpass" in line
    assert "not-the-password" not in line
    assert not (tmp_path / "node").exists()


def test_check_passes_a_fresh_node_and_warns_of_placeholders(tmp_path: Path) -> None:
    node = tmp_path / "node"
    assert run_cli("init", "-d", str(node), env={"GENOSHARE_DATABASE_URL": ""}).returncode == 0
    result = run_cli("check", "-d", str(node), env={"GENOSHARE_DATABASE_URL": ""})
    assert result.returncode == 0, result.stderr
    assert "can start" in result.stdout
    assert "warning: setting organization: is the placeholder 'Example Institute'" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_names_every_bad_setting_not_only_the_first(tmp_path: Path) -> None:
    node = tmp_path / "node"
    assert run_cli("init", "-d", str(node), env={"GENOSHARE_DATABASE_URL": ""}).returncode == 0
    (node / "genoshare.toml").write_text('ticket_ttl_seconds = 1\nenvironment = "staging"\nno_such_key = 2\n')
    result = run_cli("check", "-d", str(node), env={"GENOSHARE_DATABASE_URL": ""})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, lines
    assert any("ticket_ttl_seconds" in line and "fix:" in line for line in lines)
    assert any("environment" in line for line in lines)
    assert any("no_such_key" in line for line in lines)
