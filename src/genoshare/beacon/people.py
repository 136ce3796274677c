"""The individuals of each dataset as bitmaps over sample numbers, with consent withdrawals applied.

Phenotype and demographic filters become bitmap lookups; a withdrawn participant is one bitmap
difference. Both halves are cached per dataset and re-validated against the database at most every
``max_age`` seconds (two indexed queries), so a withdrawal written by another process is seen within
``max_age`` (``REVALIDATE_AFTER`` by default) without any notification; ``invalidate()`` makes it immediate
in-process.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from pyroaring import BitMap, FrozenBitMap
from sqlalchemy import func, select

from genoshare.store.beacon_tables import BeaconBiosample, BeaconIndividual
from genoshare.store.db import Database
from genoshare.store.models import Participant

WITHDRAWN = "withdrawn"


@dataclass(frozen=True)
class Person:
    row_id: int
    pseudonym: str
    sample_number: int
    sex: str
    age: str | None
    age_years: float | None
    phenotypic_features: tuple[dict[str, object], ...]
    diseases: tuple[dict[str, object], ...]

    def terms(self) -> set[str]:
        found = {self.sex}
        for item in self.phenotypic_features:
            if not item.get("excluded"):
                found.add(str(item["featureType"]["id"]))  # type: ignore[index]
        found.update(str(item["diseaseCode"]["id"]) for item in self.diseases)  # type: ignore[index]
        return found


@dataclass
class People:
    """One dataset's individuals; ``active`` already excludes withdrawn participants."""

    by_number: dict[int, Person]
    terms: dict[str, BitMap]
    everyone: BitMap
    #: (biosample id, document) per sample number; every indexed individual has at least one.
    biosamples: dict[int, list[tuple[str, dict[str, object]]]] = field(default_factory=dict)
    withdrawn: BitMap = field(default_factory=BitMap)
    by_id: dict[str, Person] = field(default_factory=dict)
    #: Who an ontology filter matches, per (term, include descendants): an HPO term high in the tree has
    #: thousands of descendants, whose union cost milliseconds on every query. Withdrawals do not change
    #: it (they are subtracted from ``active``); a reload of the annotations makes a new ``People``.
    term_matches: dict[tuple[str, bool], FrozenBitMap] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {person.pseudonym: person for person in self.by_number.values()}

    @property
    def active(self) -> BitMap:
        return self.everyone - self.withdrawn

    def persons(self, numbers: Iterable[int]) -> list[Person]:
        return [self.by_number[n] for n in numbers if n in self.by_number]


@dataclass
class _Entry:
    people: People
    version: tuple[int, object]
    checked_at: float


def _load(database: Database, dataset_id: str) -> People:
    with database.sessions() as session:
        rows = session.scalars(select(BeaconIndividual).where(BeaconIndividual.dataset_id == dataset_id)).all()
        samples = session.execute(
            select(BeaconIndividual.sample_number, BeaconBiosample.biosample_id, BeaconBiosample.document)
            .join(BeaconIndividual, BeaconIndividual.id == BeaconBiosample.individual_id)
            .where(BeaconBiosample.dataset_id == dataset_id)
            .order_by(BeaconBiosample.biosample_id)
        ).all()
    biosamples: dict[int, list[tuple[str, dict[str, object]]]] = {}
    for number, biosample_id, document in samples:
        biosamples.setdefault(number, []).append((biosample_id, document))
    by_number: dict[int, Person] = {}
    terms: dict[str, BitMap] = {}
    for row in rows:
        person = Person(
            row.id,
            row.pseudonym,
            row.sample_number,
            row.sex,
            row.age,
            row.age_years,
            tuple(row.phenotypic_features or ()),
            tuple(row.diseases or ()),
        )
        by_number[row.sample_number] = person
        for term in person.terms():
            terms.setdefault(term, BitMap()).add(row.sample_number)
    return People(by_number, terms, BitMap(by_number), biosamples)


#: Seconds a cached dataset's people are trusted before the database is asked again. A withdrawal must leave
#: every answer within 1 s (issue 7), including the time a busy server takes to answer: a quarter of it.
REVALIDATE_AFTER = 0.25


class PeopleCache:
    def __init__(self, database: Database, max_age: float = REVALIDATE_AFTER) -> None:
        self.database = database
        self.max_age = max_age
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def invalidate(self, dataset_id: str | None = None) -> None:
        """Forget cached state (one dataset or all); governance code may call it after a consent change."""
        with self._lock:
            if dataset_id is None:
                self._entries.clear()
            else:
                self._entries.pop(dataset_id, None)

    def get(self, dataset_id: str) -> People:
        now = time.monotonic()
        entry = self._entries.get(dataset_id)
        if entry is not None and now - entry.checked_at < self.max_age:
            return entry.people
        with self._lock:
            version = self._version(dataset_id)
            people = (
                entry.people if entry is not None and entry.version == version else _load(self.database, dataset_id)
            )
            people.withdrawn = self._withdrawn(dataset_id)
            self._entries[dataset_id] = _Entry(people, version, time.monotonic())
            return people

    def versioned(self, dataset_id: str) -> tuple[tuple[int, object], People]:
        """The dataset's people with the version they were read at (count, last update): same version, same people.

        A consent change invalidates the cache and reloads the same people; callers that build on them (the
        matchmaking index) compare versions, not objects, and so keep what they built.
        """
        while True:
            people = self.get(dataset_id)
            entry = self._entries.get(dataset_id)
            if entry is not None and entry.people is people:  # else invalidated meanwhile: read again
                return entry.version, people

    def _version(self, dataset_id: str) -> tuple[int, object]:
        with self.database.reads() as session:
            count, latest = session.execute(
                select(func.count(), func.max(BeaconIndividual.updated_at)).where(
                    BeaconIndividual.dataset_id == dataset_id
                )
            ).one()
        return int(count), latest

    def _withdrawn(self, dataset_id: str) -> BitMap:
        with self.database.reads() as session:
            numbers = session.scalars(
                select(BeaconIndividual.sample_number)
                .join(
                    Participant,
                    (Participant.dataset_id == BeaconIndividual.dataset_id)
                    & (Participant.pseudonym == BeaconIndividual.pseudonym),
                )
                .where(BeaconIndividual.dataset_id == dataset_id, Participant.consent_status == WITHDRAWN)
            ).all()
        return BitMap(numbers)
