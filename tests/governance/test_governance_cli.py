"""The steward's command line for requests, consent and usage reports."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from genoshare.cli.main import app
from genoshare.node import Node

from governance_support import Cohort
from support import Passports


def run(node: Node, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(
        app,
        [*args, "--data-dir", str(node.settings.data_dir)],
        # The login name the node's operator acts under (``genoshare.access.roles.Operator``).
        env={"GENOSHARE_DATABASE_URL": node.settings.database_url, "COLUMNS": "200", "LOGNAME": "on-duty"},
    )
    return result.exit_code, result.output


def request_access(cohort: Cohort, passports: Passports, tmp_path: Path, purpose: dict) -> tuple[int, str]:
    """`genoshare access request` as a researcher with a passport file and a purpose file."""
    passport = tmp_path / "passport.jwt"
    passport.write_text(passports.anonymous_researcher())
    purpose_file = tmp_path / "purpose.json"
    purpose_file.write_text(json.dumps(purpose))
    return run(
        cohort.node,
        "access",
        "request",
        "--passport-file",
        str(passport),
        "--dataset",
        "cohort",
        "--purpose-file",
        str(purpose_file),
        "--project",
        "T2D",
        "--institution",
        "Uni",
    )


def test_request_approve_revoke_from_the_command_line(cohort: Cohort, passports: Passports, tmp_path: Path) -> None:
    node = cohort.node
    code, output = request_access(cohort, passports, tmp_path, {"primary": "DS", "diseases": ["MONDO:0005148"]})
    assert code == 0, output
    assert "pending" in output and "MONDO:0005148" in output
    code, output = run(node, "access", "list", "--json")
    (request,) = json.loads(output)
    assert request["status"] == "pending"
    assert run(node, "access", "approve", request["id"], "--expires", "2099-01-31")[0] == 0
    assert run(node, "access", "approve", request["id"])[0] == 1, "approving twice is an error"
    assert run(node, "access", "revoke", request["id"], "--reason", "end of project")[0] == 0
    code, output = run(node, "access", "list", "--json", "--status", "revoked")
    assert [r["id"] for r in json.loads(output)] == [request["id"]]
    # The command line decides as the node's operator, named apart from every passport holder (subject@issuer).
    assert json.loads(output)[0]["decided_by"] == "operator:on-duty"


def test_bad_purpose_file_is_one_clear_line(cohort: Cohort, passports: Passports, tmp_path: Path) -> None:
    code, output = request_access(cohort, passports, tmp_path, {"primary": "DS"})
    assert code == 1
    assert "disease" in output and "Traceback" not in output


def test_consent_withdraw_rederives_and_report_lists_it(cohort: Cohort) -> None:
    node = cohort.node
    pseudonym = cohort.pseudonyms["NA00001"]
    code, output = run(node, "consent", "list", "cohort", "--json")
    assert {r["participant"] for r in json.loads(output)} == set(cohort.pseudonyms.values())
    code, output = run(node, "consent", "link", "cohort", pseudonym)
    assert code == 0 and "X-Consent-Token" in output
    assert run(node, "consent", "narrow", "cohort", pseudonym, "--code", "NPU")[0] == 0
    code, output = run(node, "consent", "withdraw", "cohort", pseudonym)
    assert code == 0, output
    assert f"re-derived: {cohort.multi.id}" in output
    code, output = run(node, "consent", "list", "cohort", "--json")
    status = {r["participant"]: (r["status"], r["restrictions"]) for r in json.loads(output)}
    assert status[pseudonym] == ("withdrawn", ["NPU"])
    code, output = run(node, "audit", "report", "cohort", "--json")
    assert code == 0 and json.loads(output) == []
    assert run(node, "audit", "verify")[0] == 0


def test_committee_is_named_by_subject_at_issuer(cohort: Cohort) -> None:
    assert run(cohort.node, "datasets", "committee", "cohort", "--member", "chair@issuer", "--auto-approve")[0] == 0
    code, output = run(cohort.node, "datasets", "committee", "cohort", "--member", "no-issuer")
    assert code == 1 and "subject@issuer" in output


def test_linking_two_accounts_shares_one_budget(cohort: Cohort) -> None:
    first, second = "alice@https://idp-a.example", "alice@https://idp-b.example"
    code, output = run(cohort.node, "privacy", "link", first, second)
    assert code == 0, output
    guard = cohort.node.privacy
    assert guard.state.principal_of(first) == guard.state.principal_of(second) is not None
    assert run(cohort.node, "privacy", "link", "alice", "bob@https://idp.example")[0] == 1
