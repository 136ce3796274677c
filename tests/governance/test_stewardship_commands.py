"""A steward's lifecycle commands: find a participant's pseudonym, edit a dataset, set its Beacon policy."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from genoshare.cli.main import app
from genoshare.node import Node

from governance_support import Cohort


def run(node: Node, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        [*args, "--data-dir", str(node.settings.data_dir)],
        env={"GENOSHARE_DATABASE_URL": node.settings.database_url, "COLUMNS": "300"},
    )
    return result.exit_code, result.output


def test_consent_find_maps_the_hospitals_id_to_the_pseudonym(cohort: Cohort) -> None:
    source, pseudonym = sorted(cohort.pseudonyms.items())[0]
    code, output = run(cohort.node, "consent", "find", "cohort", source, "--json")
    assert code == 0, output
    found = json.loads(output)
    assert (found["pseudonym"], found["consent"]) == (pseudonym, "active")
    assert source not in output, "the answer names the pseudonym, not the id it was asked for"
    code, output = run(cohort.node, "consent", "find", "cohort", "NOT-A-SAMPLE")
    assert code == 1 and "no participant" in output


def test_datasets_update_changes_descriptive_fields_only(cohort: Cohort) -> None:
    code, output = run(cohort.node, "datasets", "update", "cohort", "--title", "Diabetes cohort, 2nd release", "--json")
    assert code == 0, output
    assert json.loads(output)["title"] == "Diabetes cohort, 2nd release"
    code, output = run(cohort.node, "datasets", "list", "--json")
    assert [d["title"] for d in json.loads(output) if d["id"] == "cohort"] == ["Diabetes cohort, 2nd release"]
    code, output = run(cohort.node, "datasets", "update", "cohort", "--custodian", "  ")
    assert code == 1 and "needs a custodian" in output


def test_beacon_policy_is_set_whole_or_not_at_all(cohort: Cohort, tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"min_count": 5, "privacy": {"default": {"budget": 2.0}}}))
    code, output = run(cohort.node, "datasets", "beacon-policy", "cohort", "--set", str(good))
    assert code == 0, output
    assert json.loads(output) == {"min_count": 5, "privacy": {"default": {"budget": 2.0}}}
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"min_count": 1, "privacy": {"default": {"budgett": 1.0}}}))
    code, output = run(cohort.node, "datasets", "beacon-policy", "cohort", "--set", str(bad))
    assert code == 1 and "budgett" in output
    code, output = run(cohort.node, "datasets", "beacon-policy", "cohort")
    assert code == 0 and json.loads(output)["min_count"] == 5, "the refused policy changed nothing"


def test_objects_find_names_the_file_with_a_checksum(cohort: Cohort) -> None:
    """By the served file's sha256, its md5, or the sha256 of the file the steward ingested."""
    for checksum in (
        f"sha256:{cohort.multi.sha256}",
        f"md5:{cohort.multi.md5}",
        cohort.multi.source_sha256,
    ):
        code, output = run(cohort.node, "objects", "find", checksum, "--json")
        assert code == 0, output
        assert [row["id"] for row in json.loads(output)] == [cohort.multi.id], checksum
    code, output = run(cohort.node, "objects", "find", "sha256:" + "0" * 64)
    assert code == 1 and "no DRS object" in output
