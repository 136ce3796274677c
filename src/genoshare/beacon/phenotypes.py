"""Individuals and biosamples from TSV or Phenopackets v2 JSON, linked to VCF samples by pseudonym.

The TSV has the columns of the demo cohort's ``individuals.tsv`` (``genoshare/demo/data/cohort``, made by
``genoshare_lab.synth``).

Files name people as the steward knows them; the name is looked up in ``participants`` (source name or
pseudonym) and only the pseudonym is stored. A person not yet in any VCF gets the pseudonym the ingest
would give them, so a later VCF joins up. Steward biosample ids are not published: biosamples are
renamed ``<pseudonym>-S<n>``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.json_format import ParseDict, ParseError
from phenopackets import Phenopacket
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from genoshare.beacon.filters import years
from genoshare.errors import InvalidInput, NotFound
from genoshare.index.published import DEFAULT_BIOSAMPLE, assign_sample_numbers
from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.ingest.metadata import MetadataDeidentifier
from genoshare.ontology import get_ontology
from genoshare.store.beacon_tables import BeaconBiosample, BeaconIndividual
from genoshare.store.db import Database
from genoshare.store.models import Dataset, Participant, utcnow

PHENOPACKET_SEX = {
    "FEMALE": "NCIT:C16576",
    "MALE": "NCIT:C20197",
    "OTHER_SEX": "NCIT:C45908",
    "UNKNOWN_SEX": "NCIT:C17998",
}
TSV_COLUMNS = ("individual_id", "sex", "age", "phenotypic_features", "diseases")


@dataclass
class Phenotypes:
    """One person as a file describes them, before linking."""

    name: str
    sex: str = "NCIT:C17998"
    age: str | None = None
    phenotypic_features: list[dict[str, Any]] = field(default_factory=list)
    diseases: list[dict[str, Any]] = field(default_factory=list)
    #: Beacon biosample documents without ids; empty keeps the person's existing biosamples.
    biosamples: list[dict[str, Any]] = field(default_factory=list)


def _term(curie: str, label: str | None = None) -> dict[str, Any]:
    prefix = curie.split(":", 1)[0]
    if label is None and prefix in ("HP", "MONDO"):
        ontology = get_ontology(prefix)
        label = ontology.label(curie) if curie in ontology else None
    return {"id": curie, "label": label} if label else {"id": curie}


#: Cleans one person's raw record before anything is read from it: ``scrub(name, record) -> record``.
Scrub = Callable[[str, dict[str, Any]], dict[str, Any]]


def read_tsv(path: Path, scrub: Scrub) -> list[Phenotypes]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        missing = set(TSV_COLUMNS) - set(reader.fieldnames or ())
        if missing:
            raise InvalidInput(f"{path.name}: missing columns {', '.join(sorted(missing))}")
        people = []
        for raw in reader:
            row = scrub(raw["individual_id"], dict(raw))
            split = [term.strip() for term in row["phenotypic_features"].split(";") if term.strip()]
            people.append(
                Phenotypes(
                    name=row["individual_id"],
                    sex=row["sex"] or "NCIT:C17998",
                    age=row.get("age") or None,
                    phenotypic_features=[{"featureType": _term(t)} for t in split],
                    diseases=[{"diseaseCode": _term(t)} for t in row["diseases"].split(";") if t.strip()],
                )
            )
        return people


def _ontology_class(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if not value or not value.get("id"):
        return None
    return _term(value["id"], value.get("label"))


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused if it names a key twice (as protobuf's parser does): one copy could escape review."""
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError(f"duplicate key {next(key for key in keys if keys.count(key) > 1)!r}")
    return dict(pairs)


def read_phenopacket(path: Path, scrub: Scrub) -> Phenotypes:
    """One person from a Phenopacket v2 JSON file, read and parsed once.

    The parsed document is checked against the Phenopacket schema (``ParseDict`` is what protobuf's own
    JSON parser runs after ``json.loads``), then de-identified, and every value is read from the
    de-identified document: the de-identifier rewrites the JSON (dates shifted, identifiers dropped, an age
    derived from a birth date), so a value read from the schema's message would be the undeidentified one.
    """
    try:
        data = json.loads(path.read_text(), object_pairs_hook=_unique_keys)
        ParseDict(data, Phenopacket())
    except (ParseError, UnicodeDecodeError, ValueError) as error:
        raise InvalidInput(f"{path.name}: not a Phenopacket v2 JSON document: {error}") from error
    if not (data.get("subject") or {}).get("id"):
        raise InvalidInput(f"{path.name}: the phenopacket has no subject.id to link to a VCF sample")
    data = scrub(data["subject"]["id"], data)
    subject = data["subject"]
    features = [
        {
            "featureType": _term(item["type"]["id"], item["type"].get("label")),
            **({"excluded": True} if item.get("excluded") else {}),
        }
        for item in data.get("phenotypicFeatures", [])
    ]
    diseases = [
        {"diseaseCode": _term(item["term"]["id"], item["term"].get("label"))}
        for item in data.get("diseases", [])
        if not item.get("excluded")
    ]
    biosamples = []
    for sample in data.get("biosamples", []):
        document = dict(DEFAULT_BIOSAMPLE)
        origin = _ontology_class(sample.get("sampledTissue"))
        status = _ontology_class(sample.get("materialSample"))
        if origin:
            document["sampleOriginType"] = origin
        if status:
            document["biosampleStatus"] = status
        diagnosis = _ontology_class(sample.get("histologicalDiagnosis"))
        if diagnosis:
            document["histologicalDiagnosis"] = diagnosis
        biosamples.append(document)
    # The age at the last encounter, else the one de-identification derived from a date of birth.
    age = ((subject.get("timeAtLastEncounter") or {}).get("age") or {}).get("iso8601duration") or subject.get("age")
    return Phenotypes(
        name=subject["id"],
        sex=PHENOPACKET_SEX.get(subject.get("sex", "UNKNOWN_SEX"), "NCIT:C17998"),
        age=age,
        phenotypic_features=features,
        diseases=diseases,
        biosamples=biosamples,
    )


def read_file(path: Path, scrub: Scrub) -> list[Phenotypes]:
    if path.suffix.lower() in (".tsv", ".txt"):
        return read_tsv(path, scrub)
    if path.suffix.lower() == ".json":
        return [read_phenopacket(path, scrub)]
    raise InvalidInput(f"{path.name}: give a .tsv (individuals.tsv columns) or a Phenopacket v2 .json")


class PhenotypeIngest:
    def __init__(self, database: Database, pseudonymiser: Pseudonymiser, deidentifier: MetadataDeidentifier) -> None:
        self.database = database
        self.pseudonymiser = pseudonymiser
        self.deidentifier = deidentifier

    def ingest(self, dataset_id: str, paths: Iterable[Path]) -> int:
        """Store everyone the files describe, in one transaction; returns the number of individuals.

        Every record is de-identified first (``genoshare.ingest.metadata``): identifiers dropped, birth
        dates turned into ages, other dates shifted per person; one still holding an identifier stops it.
        """

        def scrub(name: str, record: dict[str, Any]) -> dict[str, Any]:
            return self.deidentifier.record(dataset_id, name, record)

        people = [person for path in paths for person in read_file(Path(path), scrub)]
        with self.database.session() as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:
                raise NotFound(f"no dataset {dataset_id!r}")
            known = dict(self._known(session, dataset_id))
            pseudonyms = set(known.values())
            for person in people:
                # A person named by the steward's sample name, or by a pseudonym the node gave.
                found = known.get(self.pseudonymiser.source_key(dataset_id, person.name))
                own = person.name if person.name in pseudonyms else None
                pseudonym = found or own or self._pseudonym(dataset, person.name)
                self._store(session, dataset_id, pseudonym, person)
        return len(people)

    @staticmethod
    def _known(session: Session, dataset_id: str) -> list[tuple[str, str]]:
        """(source key, pseudonym) of each participant the dataset has."""
        rows = session.execute(
            select(Participant.source_key, Participant.pseudonym).where(Participant.dataset_id == dataset_id)
        ).all()
        return [(source_key, pseudonym) for source_key, pseudonym in rows]

    def _pseudonym(self, dataset: Dataset, name: str) -> str:
        return self.pseudonymiser.pseudonym(dataset.id, name) if dataset.pseudonymise else name

    @staticmethod
    def _store(session: Session, dataset_id: str, pseudonym: str, person: Phenotypes) -> None:
        assign_sample_numbers(session, dataset_id, [pseudonym])
        row = session.scalars(
            select(BeaconIndividual).where(
                BeaconIndividual.dataset_id == dataset_id, BeaconIndividual.pseudonym == pseudonym
            )
        ).one()
        row.sex = person.sex
        row.age = person.age
        row.age_years = years(person.age) if person.age else None
        row.phenotypic_features = person.phenotypic_features
        row.diseases = person.diseases
        row.updated_at = utcnow()  # biosample-only changes must move the version the caches compare
        if person.biosamples:
            session.execute(delete(BeaconBiosample).where(BeaconBiosample.individual_id == row.id))
            for number, document in enumerate(person.biosamples, start=1):
                session.add(
                    BeaconBiosample(
                        dataset_id=dataset_id,
                        biosample_id=f"{pseudonym}-S{number}",
                        individual_id=row.id,
                        document=document,
                    )
                )
