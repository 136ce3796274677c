"""Participant metadata is de-identified on its way into the Beacon tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.errors import InvalidInput
from genoshare.node import Node, build_phenotypes
from genoshare.store.beacon_tables import BeaconIndividual

HEADER = "individual_id\tsex\tage\tphenotypic_features\tdiseases\tdate_of_birth\tname\temail_note\n"


def stored(node: Node) -> list[BeaconIndividual]:
    with node.database.sessions() as session:
        return list(session.scalars(select(BeaconIndividual)))


@pytest.fixture
def study(node: Node) -> Node:
    DatasetService(node.database).create(
        NewDataset(id="study", title="T", custodian="C", access_level="controlled", duo_codes=["GRU"])
    )
    return node


def test_birth_dates_become_ages_and_names_are_not_kept(study: Node, tmp_path: Path) -> None:
    table = tmp_path / "people.tsv"
    table.write_text(HEADER + "P1\tNCIT:C16576\t\tHP:0001250\tMONDO:0005148\t1950-06-01\tJane Doe\tnone\n")
    assert build_phenotypes(study).ingest("study", [table]) == 1
    (person,) = stored(study)
    assert person.age is not None and person.age.startswith("P7")
    assert "Jane" not in json.dumps([person.phenotypic_features, person.diseases, person.pseudonym])
    assert person.pseudonym != "P1"


def test_phenopacket_date_of_birth_becomes_age(study: Node, tmp_path: Path) -> None:
    packet = tmp_path / "p2.json"
    packet.write_text(
        json.dumps(
            {
                "id": "pp-2",
                "subject": {"id": "P2", "dateOfBirth": "1990-01-01T00:00:00Z", "sex": "MALE"},
                "phenotypicFeatures": [{"type": {"id": "HP:0001250", "label": "Seizure"}, "description": "free text"}],
                "metaData": {
                    "created": "2024-01-01T00:00:00Z",
                    "createdBy": "x",
                    "phenopacketSchemaVersion": "2.0",
                    "resources": [],
                },
            }
        )
    )
    build_phenotypes(study).ingest("study", [packet])
    (person,) = stored(study)
    assert person.age is not None and person.age.startswith("P3")


def test_a_record_still_holding_an_identifier_stores_nobody(study: Node, tmp_path: Path) -> None:
    table = tmp_path / "leaky.tsv"
    table.write_text(
        HEADER
        + "P1\tNCIT:C16576\tP40Y\tHP:0001250\t\t\t\tok\n"
        + "P2\tNCIT:C20197\tP50Y\t\t\t\t\tcall jane@example.org\n"
    )
    with pytest.raises(InvalidInput, match="e-mail"):
        build_phenotypes(study).ingest("study", [table])
    assert stored(study) == []


def test_a_phenopacket_naming_a_key_twice_stores_nobody(study: Node, tmp_path: Path) -> None:
    # JSON keeps the last copy of a key; the file is refused instead, so no copy escapes the schema check.
    packet = tmp_path / "twice.json"
    packet.write_text(
        '{"id": "pp-3", "subject": {"id": "P3", "sex": "MALE"}, "subject": {"id": "P3", "sex": "FEMALE"}}'
    )
    with pytest.raises(InvalidInput, match="not a Phenopacket v2 JSON document: duplicate key 'subject'"):
        build_phenotypes(study).ingest("study", [packet])
    assert stored(study) == []
