"""Beacon default-model documents built from the node's rows: only pseudonyms and public terms go out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from genoshare.beacon.people import People, Person
from genoshare.duo.codes import parse_dataset_codes
from genoshare.index.serving import VariantRow
from genoshare.store.beacon_tables import BeaconVariantIndex
from genoshare.store.models import Dataset

SEX_LABELS = {"NCIT:C16576": "female", "NCIT:C20197": "male", "NCIT:C17998": "unknown"}
PIPELINE = "genoshare-ingest"


@dataclass(frozen=True)
class Derived:
    """A run or analysis: one per biosample and indexed variant file, the only provenance the node has."""

    id: str
    biosample_id: str
    person: Person
    index: BeaconVariantIndex


def individual(person: Person) -> dict[str, Any]:
    record: dict[str, Any] = {
        "id": person.pseudonym,
        "sex": {"id": person.sex, "label": SEX_LABELS.get(person.sex, person.sex)},
    }
    if person.phenotypic_features:
        record["phenotypicFeatures"] = [dict(item) for item in person.phenotypic_features]
    if person.diseases:
        record["diseases"] = [dict(item) for item in person.diseases]
    if person.age:
        record["info"] = {"age": {"iso8601duration": person.age}}
    return record


def biosample(biosample_id: str, person: Person, document: dict[str, Any]) -> dict[str, Any]:
    return {**document, "id": biosample_id, "individualId": person.pseudonym}


def run(item: Derived) -> dict[str, Any]:
    return {
        "id": f"{item.id}.run",
        "biosampleId": item.biosample_id,
        "individualId": item.person.pseudonym,
        "runDate": item.index.built_at.date().isoformat(),
    }


def analysis(item: Derived) -> dict[str, Any]:
    return {
        "id": item.id,
        "biosampleId": item.biosample_id,
        "individualId": item.person.pseudonym,
        "runId": f"{item.id}.run",
        "analysisDate": item.index.built_at.date().isoformat(),
        "pipelineName": PIPELINE,
        "info": {"variantFile": item.index.object_id},
    }


def variant(hit: VariantRow, index: BeaconVariantIndex, people: People | None, dataset_id: str) -> dict[str, Any]:
    """A genomicVariation; ``people`` (record access) adds the carriers, never their genotypes' source names."""
    record: dict[str, Any] = {
        "variantInternalId": hit.internal_id,
        "variation": {
            "referenceBases": hit.ref,
            "alternateBases": hit.alt,
            "variantType": hit.variant_type,
            "location": {
                "type": "SequenceLocation",
                "sequence_id": f"HGVSid:{hit.contig}",
                "interval": {
                    "type": "SequenceInterval",
                    "start": {"type": "Number", "value": hit.start},
                    "end": {"type": "Number", "value": hit.end},
                },
            },
        },
        "identifiers": {"genomicHGVSId": f"{hit.contig}:g.{hit.start + 1}{hit.ref}>{hit.alt}"},
        "info": {"assemblyId": index.assembly_id},
    }
    if hit.an:
        record["frequencyInPopulations"] = [
            {
                "source": f"genoshare dataset {dataset_id}",
                "sourceReference": dataset_id,
                "frequencies": [{"population": dataset_id, "alleleFrequency": hit.ac / hit.an}],
            }
        ]
    if people is not None:
        record["caseLevelData"] = [
            {"biosampleId": people.biosamples[person.sample_number][0][0], "individualId": person.pseudonym}
            for person in people.persons(hit.carriers or ())
            if people.biosamples.get(person.sample_number)
        ]
    return record


def dataset(row: Dataset) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.title,
        "description": row.description,
        "createDateTime": row.created_at.isoformat(),
        "updateDateTime": row.updated_at.isoformat(),
        "dataUseConditions": {"duoDataUse": [code.to_beacon() for code in parse_dataset_codes(row.duo_codes)]},
        "info": {"accessLevel": row.access_level, "custodian": row.custodian, "license": row.license},
    }


def cohort(row: Dataset, size: int | None) -> dict[str, Any]:
    record: dict[str, Any] = {"id": row.id, "name": row.title, "cohortType": "study-defined"}
    if size is not None:
        record["cohortSize"] = size
    return record
