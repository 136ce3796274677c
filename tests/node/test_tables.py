"""Tables of the command line print identifiers whole, so an operator can copy them (never "id…")."""

from __future__ import annotations

from pathlib import Path

from processes import run_cli

LONG_ID = "a-rather-long-dataset-identifier-x"


def test_a_long_id_is_never_cut_in_an_80_column_table(tmp_path: Path) -> None:
    node, env = str(tmp_path / "node"), {"GENOSHARE_DATABASE_URL": "", "COLUMNS": "80"}
    assert run_cli("init", "-d", node, env=env).returncode == 0
    made = run_cli(
        *("datasets", "create", LONG_ID, "--title", "A long title that takes space in the table"),
        *("--custodian", "Some custodian institute with a long name", "--duo", "GRU", "-d", node),
        env=env,
    )
    assert made.returncode == 0, made.stderr
    listed = run_cli("datasets", "list", "-d", node, env=env)
    assert listed.returncode == 0 and LONG_ID in listed.stdout, listed.stdout
