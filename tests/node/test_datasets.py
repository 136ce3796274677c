"""Datasets are created only with valid ids, access levels and DUO consent codes."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from genoshare.cli.main import app
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.errors import Conflict, InvalidInput
from genoshare.node import Node


def new(dataset_id: str = "cohort1", codes: tuple[str, ...] = ("GRU", "NPU"), access: str = "controlled") -> NewDataset:
    return NewDataset(
        id=dataset_id, title="Cohort one", custodian="Example Hospital", access_level=access, duo_codes=codes
    )


def test_a_dataset_keeps_its_consent_codes(node: Node) -> None:
    service = DatasetService(node.database)
    service.create(new(codes=("DS:MONDO:0005015", "NPU", "TS:12")))
    stored = service.get("cohort1")
    assert stored.duo_codes == ["DS:MONDO:0005015", "NPU", "TS:12"]
    assert stored.access_level == "controlled"


def test_codes_may_be_given_by_duo_id(node: Node) -> None:
    dataset = DatasetService(node.database).create(new(codes=("DUO:0000042",)))
    assert dataset.duo_codes == ["GRU"]


@pytest.mark.parametrize(
    ("codes", "message"),
    [
        (("XYZ",), "XYZ"),
        (("DS",), "DS"),
        (("DS:MONDO:9999999",), "MONDO:9999999"),
        (("GRU", "TS"), "TS"),
        (("GRU", "MOR:not-a-date"), "MOR"),
        ((), "consent codes"),
        (("NPU",), "primary"),
    ],
)
def test_bad_consent_codes_are_refused_with_the_reason(node: Node, codes: tuple[str, ...], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        DatasetService(node.database).create(new(codes=codes))
    assert DatasetService(node.database).list() == []


@pytest.mark.parametrize("dataset_id", ["../etc", "a/b", "", ".hidden", "a" * 65, "x\x00y", "a.b"])
def test_ids_that_could_escape_a_path_are_refused(node: Node, dataset_id: str) -> None:
    with pytest.raises(InvalidInput, match="invalid dataset id"):
        DatasetService(node.database).create(new(dataset_id=dataset_id))


def test_unknown_access_level_is_refused(node: Node) -> None:
    with pytest.raises(InvalidInput, match="access level"):
        DatasetService(node.database).create(new(access="secret"))


def test_a_second_dataset_with_the_same_id_is_a_conflict(node: Node) -> None:
    DatasetService(node.database).create(new())
    with pytest.raises(Conflict):
        DatasetService(node.database).create(new())


def test_cli_creates_and_lists(node: Node) -> None:
    runner = CliRunner()
    env = {"GENOSHARE_DATABASE_URL": node.settings.database_url}
    data_dir = str(node.settings.data_dir)
    created = runner.invoke(
        app,
        [
            "datasets",
            "create",
            "cohort1",
            "--title",
            "T",
            "--custodian",
            "C",
            "--duo",
            "GRU",
            "--duo",
            "NPU",
            "--access",
            "controlled",
            "--data-dir",
            data_dir,
        ],
        env=env,
    )
    assert created.exit_code == 0, created.output
    listed = runner.invoke(app, ["datasets", "list", "--json", "--data-dir", data_dir], env=env)
    assert '"duo": [\n      "GRU",\n      "NPU"\n    ]' in listed.output


def test_cli_reports_a_bad_code_in_one_line(node: Node) -> None:
    result = CliRunner().invoke(
        app,
        [
            "datasets",
            "create",
            "c2",
            "--title",
            "T",
            "--custodian",
            "C",
            "--duo",
            "FOO",
            "--data-dir",
            str(node.settings.data_dir),
        ],
        env={"GENOSHARE_DATABASE_URL": node.settings.database_url},
    )
    assert result.exit_code == 1
    assert "FOO" in result.output
    assert "Traceback" not in result.output
