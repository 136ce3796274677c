"""``genoshare duo`` through typer's CliRunner: exit codes and the JSON document."""

import json

import pytest
import typer
from typer.testing import CliRunner

from genoshare.cli.duo import duo_app

runner = CliRunner()


def run(*args: str):
    return runner.invoke(duo_app, list(args))


def test_brief_example_denies_for_profit_on_npu():
    result = run(
        "match",
        "--dataset",
        "DS:MONDO:0005015",
        "--dataset",
        "NPU",
        "--purpose",
        "DS:MONDO:0005148",
        "--for-profit",
        "--json",
    )
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["outcome"] == "DENY"
    assert document["dataset"] == ["DS:MONDO:0005015", "NPU"]
    assert document["purpose"]["primary"] == "DS"
    assert document["purpose"]["diseases"] == ["MONDO:0005148"]
    assert document["purpose"]["for_profit"] is True
    assert [c["code"] for c in document["codes"]] == ["DS:MONDO:0005015", "NPU"]
    assert [c["outcome"] for c in document["codes"]] == ["PERMIT", "DENY"]
    assert document["codes"][0]["reasons"] == [
        "permitted: DS MONDO:0005015 (diabetes mellitus) includes MONDO:0005148 (type 2 diabetes mellitus)"
    ]
    assert set(document["codes"][1]) == {"code", "id", "label", "outcome", "reasons"}
    assert document["expires_on"] is None


@pytest.mark.parametrize(
    ("args", "exit_code", "outcome"),
    [
        (["--dataset", "GRU", "--purpose", "HMB"], 0, "PERMIT"),
        (["--dataset", "HMB", "--purpose", "POA"], 1, "DENY"),
        (["--dataset", "GRU", "--dataset", "IRB", "--purpose", "GRU"], 3, "NEEDS_REVIEW"),
        (["--dataset", "GRU", "--dataset", "IRB", "--purpose", "GRU", "--irb"], 0, "PERMIT"),
        (["--dataset", "DS:MONDO:0005148", "--purpose", "DS:MONDO:0005015"], 1, "DENY"),
        (["--dataset", "DS:MONDO:0005015", "--purpose", "DS:MONDO:0005148", "--disease", "MONDO:0004979"], 1, "DENY"),
        (
            [
                "--dataset",
                "GRU",
                "--dataset",
                "TS:12",
                "--purpose",
                "GRU",
                "--date",
                "2026-01-01",
                "--granted-on",
                "2024-01-01",
            ],
            1,
            "DENY",
        ),
        (
            ["--dataset", "GRU", "--dataset", "MOR:2027-01-31", "--purpose", "GRU", "--publication-date", "2026-12-01"],
            1,
            "DENY",
        ),
        (["--dataset", "GRU", "--dataset", "GS:Europe", "--purpose", "GRU", "--location", "Europe"], 0, "PERMIT"),
        (["--dataset", "GRU", "--dataset", "NMDS", "--purpose", "GRU", "--methods"], 1, "DENY"),
        (["--dataset", "GRU", "--dataset", "NPOA", "--purpose", "HMB", "--ancestry"], 1, "DENY"),
        (["--dataset", "GRU", "--dataset", "GSO", "--purpose", "HMB", "--genetic"], 0, "PERMIT"),
        (["--dataset", "GRU", "--purpose", "HMB", "--clinical-care"], 1, "DENY"),
        (["--dataset", "GRU", "--dataset", "NCU", "--purpose", "HMB", "--commercial"], 1, "DENY"),
        (["--dataset", "GRU", "--dataset", "US", "--purpose", "HMB", "--requester", "alice"], 3, "NEEDS_REVIEW"),
    ],
)
def test_exit_codes(args, exit_code, outcome):
    result = run("match", *args, "--json")
    assert result.exit_code == exit_code, result.output
    assert json.loads(result.stdout)["outcome"] == outcome


def test_table_output_by_default():
    result = run("match", "--dataset", "GRU", "--dataset", "TS:12", "--purpose", "HMB", "--date", "2026-06-01")
    assert result.exit_code == 0
    assert result.stdout.startswith("PERMIT")
    assert "TS:12" in result.stdout
    assert "access expires on 2027-06-01 (TS)" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "XYZ", "--purpose", "GRU"], "unknown consent code 'XYZ'"),
        (["--dataset", "GRU-CC", "--purpose", "GRU"], "obsolete in DUO"),
        (["--dataset", "DS", "--purpose", "GRU"], "DS needs a parameter"),
        (["--dataset", "GRU", "--dataset", "HMB", "--purpose", "GRU"], "exactly one primary"),
        (["--dataset", "GRU", "--purpose", "DS"], "a DS purpose needs at least one MONDO disease id"),
        (["--dataset", "GRU", "--purpose", "XYZ"], "unknown purpose category 'XYZ'"),
        (["--dataset", "GRU", "--purpose", "HMB:MONDO:0005015"], "only a DS purpose takes a disease"),
        (["--dataset", "GRU", "--purpose", "DS:MONDO:9999999"], "unknown MONDO term 'MONDO:9999999'"),
        (["--dataset", "GRU", "--purpose", "GRU", "--date", "yesterday"], "--date"),
    ],
)
def test_bad_input_is_a_usage_error(args, message):
    result = run("match", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    flat = " ".join(result.stderr.replace("│", " ").split())
    assert message in flat
    assert "Traceback" not in result.stderr


def test_help_documents_exit_codes():
    result = run("match", "--help")
    assert result.exit_code == 0
    for line in ("0 PERMIT", "1 DENY", "2 usage error", "3 NEEDS_REVIEW"):
        assert line in result.stdout


def test_codes_lists_every_consent_code_as_json():
    result = run("codes", "--json")
    assert result.exit_code == 0
    rows = json.loads(result.stdout)
    assert len(rows) == 23
    by_code = {row["shorthand"]: row for row in rows}
    assert by_code["DS"] == {
        "shorthand": "DS",
        "id": "DUO:0000007",
        "kind": "permission",
        "label": "disease specific research",
        "parameter": "a MONDO disease id",
        "example": "DS:MONDO:0005015",
    }
    assert by_code["NPU"]["parameter"] is None
    assert "DUO:0000031" not in {row["id"] for row in rows}  # investigation classes are not codes


def test_codes_table():
    result = run("codes")
    assert result.exit_code == 0
    assert "NPUNCU" in result.stdout
    assert "DUO:0000044" in result.stdout


def test_mounts_as_a_sub_app():
    """The main CLI mounts ``duo_app`` with ``add_typer(duo_app, name="duo")``; check that shape works."""
    main = typer.Typer()
    main.add_typer(duo_app, name="duo")

    @main.command()
    def other() -> None:  # a second command so that "duo" is a real sub-command
        """Unrelated."""

    result = runner.invoke(main, ["duo", "match", "--dataset", "NRES", "--purpose", "POA", "--json"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["outcome"] == "PERMIT"
