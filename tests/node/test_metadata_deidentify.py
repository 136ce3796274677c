"""Participant metadata loses direct identifiers, birth dates become ages, other dates shift per person."""

from __future__ import annotations

import datetime as dt

import pytest

from genoshare.errors import InvalidInput
from genoshare.ingest.metadata import MetadataDeidentifier

REFERENCE = dt.date(2026, 11, 25)


@pytest.fixture
def scrub() -> MetadataDeidentifier:
    return MetadataDeidentifier(b"test-secret" * 3, reference_date=REFERENCE)


def test_direct_identifiers_go_and_birth_date_becomes_age(scrub: MetadataDeidentifier) -> None:
    row = {
        "id": "P1",
        "First Name": "Jane",
        "lastName": "Doe",
        "DOB": "1980-12-01",
        "sex": "female",
        "MRN": "H123",
        "phone": "+44 20 7946 0000",
    }
    assert scrub.record("c1", "P1", row) == {"id": "P1", "age": "P45Y", "sex": "female"}


def test_phenopacket_shape_is_cleaned_recursively(scrub: MetadataDeidentifier) -> None:
    packet = {
        "id": "pp1",
        "subject": {"id": "P1", "dateOfBirth": "1970-01-01T00:00:00Z", "sex": "MALE"},
        "phenotypicFeatures": [
            {
                "type": {"id": "HP:0001250", "label": "Seizure"},
                "description": "seen at St Mary's by Dr Smith",
                "onset": {"timestamp": "2020-03-04T10:00:00Z"},
            }
        ],
    }
    cleaned = scrub.record("c1", "P1", packet)
    assert cleaned["subject"] == {"id": "P1", "age": "P56Y", "sex": "MALE"}
    feature = cleaned["phenotypicFeatures"][0]
    assert "description" not in feature
    assert feature["type"] == {"id": "HP:0001250", "label": "Seizure"}
    assert feature["onset"]["timestamp"] != "2020-03-04T10:00:00Z"
    assert feature["onset"]["timestamp"].endswith("T10:00:00Z")


def test_dates_shift_consistently_within_a_person_and_differently_between_people(scrub: MetadataDeidentifier) -> None:
    first = scrub.record("c1", "P1", {"diagnosed": "2020-01-10", "operated": "2020-01-20"})
    again = scrub.record("c1", "P1", {"diagnosed": "2020-01-10"})
    assert first["diagnosed"] == again["diagnosed"] != "2020-01-10"
    gap = dt.date.fromisoformat(first["operated"]) - dt.date.fromisoformat(first["diagnosed"])
    assert gap == dt.timedelta(days=10), "intervals within a record stay true"
    shifts = {scrub.shift_days("c1", f"P{i}") for i in range(50)}
    assert len(shifts) > 20 and 0 not in shifts and all(abs(s) <= 180 for s in shifts)


def test_whitelisted_free_text_is_kept() -> None:
    scrub = MetadataDeidentifier(b"s" * 32, keep_free_text=["notes"], reference_date=REFERENCE)
    assert scrub.record("c1", "P1", {"notes": "family history of diabetes"}) == {"notes": "family history of diabetes"}


@pytest.mark.parametrize("value", ["contact jane@example.org", "ssn 123-45-6789", "nhs 943 476 5919"])
def test_identifiers_hidden_in_other_fields_stop_the_ingest(scrub: MetadataDeidentifier, value: str) -> None:
    with pytest.raises(InvalidInput, match=r"P1\.extra"):
        scrub.record("c1", "P1", {"extra": value})


def test_an_empty_age_column_is_filled_from_the_birth_date(scrub: MetadataDeidentifier) -> None:
    assert scrub.record("c1", "P1", {"age": "", "dob": "2000-11-26"}) == {"age": "P25Y"}
