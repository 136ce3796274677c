"""Creating, reading and listing datasets, with their consent codes checked against DUO."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from genoshare.access.at_rest import check_plaintext_allowed
from genoshare.access.disclosure import DisclosureRule
from genoshare.access.granularity import AccessLevel, Granularity
from genoshare.access.privacy import PrivacyGuard
from genoshare.access.privacy_state import MemoryPrivacyState
from genoshare.duo.codes import parse_dataset_codes
from genoshare.duo.errors import DuoError
from genoshare.errors import Conflict, InvalidInput, NotFound
from genoshare.ids import check_dataset_id
from genoshare.store.db import Database
from genoshare.store.models import AuditEvent, DataObject, Dataset, Participant


@dataclass(frozen=True)
class NewDataset:
    id: str
    title: str
    custodian: str
    access_level: str
    duo_codes: Sequence[str]
    description: str = ""
    license: str = ""
    pseudonymise: bool = True
    #: Public datasets only: keep files unencrypted at rest (``genoshare.access.at_rest``).
    store_plaintext: bool = False


def check_duo_codes(codes: Sequence[str]) -> list[str]:
    """Parse each code (by short name or DUO id, parameter after ':'); return them normalised."""
    if not codes:
        raise InvalidInput("a dataset needs its consent codes: give at least one --duo (e.g. GRU)")
    try:
        parsed = parse_dataset_codes(codes)
    except DuoError as error:
        raise InvalidInput(str(error)) from error
    return [str(code) for code in parsed]


def deleted(session: Session, dataset_id: str) -> bool:
    """Whether a dataset of this id was deleted (``genoshare datasets delete``): the audit log remembers it."""
    deletion = select(AuditEvent.seq).where(
        AuditEvent.action == "datasets.delete",
        AuditEvent.resource == f"datasets/{dataset_id}",
        AuditEvent.decision == "delete",
    )
    return session.scalar(deletion.limit(1)) is not None


class DatasetService:
    def __init__(self, database: Database) -> None:
        self.database = database

    def create(self, new: NewDataset) -> Dataset:
        check_dataset_id(new.id)
        if new.access_level not in AccessLevel.ALL:
            raise InvalidInput(f"access level must be one of {', '.join(AccessLevel.ALL)}, not {new.access_level!r}")
        for field, value in (("title", new.title), ("custodian", new.custodian)):
            if not value.strip():
                raise InvalidInput(f"a dataset needs a {field}")
        codes = check_duo_codes(new.duo_codes)
        if new.store_plaintext:
            check_plaintext_allowed(new.id, new.access_level)
        with self.database.session() as session:
            if session.get(Dataset, new.id) is not None:
                raise Conflict(f"dataset {new.id} exists already")
            if deleted(session, new.id):
                # Visas the node signed for the deleted dataset name it, and still circulate until they expire.
                raise Conflict(
                    f"a dataset {new.id} was deleted; its grants' visas may still circulate: choose another id"
                )
            dataset = Dataset(
                id=new.id,
                title=new.title.strip(),
                description=new.description,
                custodian=new.custodian.strip(),
                license=new.license,
                access_level=new.access_level,
                duo_codes=codes,
                pseudonymise=new.pseudonymise,
                store_plaintext=new.store_plaintext,
            )
            session.add(dataset)
        return dataset

    def set_committee(self, dataset_id: str, members: Sequence[str], auto_approve: bool) -> Dataset:
        cleaned = sorted({member.strip() for member in members if member.strip()})
        if not cleaned or any("@" not in member for member in cleaned):
            raise InvalidInput("committee members are named subject@issuer, as in their passports")
        with self.database.session() as session:
            dataset = self.get(dataset_id, session)
            dataset.committee, dataset.auto_approve = cleaned, auto_approve
        return dataset

    def update(self, dataset_id: str, **changes: str | None) -> Dataset:
        """Change a dataset's descriptive fields (title, description, custodian, licence); None keeps one.

        Its access level and consent codes are not among them: grants were given under those, so a change
        is a new dataset (create it, move the files) rather than an edit no researcher was asked about.
        """
        editable = {"title", "description", "custodian", "license"}
        unknown = set(changes) - editable
        if unknown:
            raise InvalidInput(f"cannot change {', '.join(sorted(unknown))}; editable: {', '.join(sorted(editable))}")
        with self.database.session() as session:
            dataset = self.get(dataset_id, session)
            for field, value in changes.items():
                if value is None:
                    continue
                if field in ("title", "custodian") and not value.strip():
                    raise InvalidInput(f"a dataset needs a {field}")
                setattr(dataset, field, value.strip())
        return dataset

    def set_beacon_policy(self, dataset_id: str, policy: Mapping[str, object]) -> Dataset:
        """Replace a dataset's Beacon disclosure and privacy policy, refused whole if any setting is wrong."""
        if not isinstance(policy, Mapping):
            raise InvalidInput("a Beacon policy is a JSON object (docs/privacy.md)")
        DisclosureRule.from_policy(policy)
        with self.database.session() as session:
            dataset = self.get(dataset_id, session)
            trial = Dataset(id=dataset.id, beacon_policy=dict(policy))
            guard = PrivacyGuard(MemoryPrivacyState())
            for granularity in (Granularity.BOOLEAN, Granularity.COUNT, Granularity.RECORD):
                guard.settings(trial, granularity)
            dataset.beacon_policy = dict(policy)
        return dataset

    def objects_by_checksum(self, checksum: str) -> builtins.list[DataObject]:
        """The files whose served bytes, or the file the steward ingested, have this checksum.

        ``checksum``: ``sha256:<hex>`` (or DRS's ``sha-256:``), ``md5:<hex>`` or a bare hex digest (its length
        says which).
        """
        kind, _, digest = checksum.strip().lower().rpartition(":")
        kind = kind.replace("-", "")  # DRS names its checksum types sha-256 and md5
        kind = kind or {64: "sha256", 32: "md5"}.get(len(digest), "")
        if kind not in ("sha256", "md5") or len(digest) != {"sha256": 64, "md5": 32}[kind]:
            raise InvalidInput(f"not a checksum: {checksum!r} (write sha256:<64 hex> or md5:<32 hex>)")
        matches = (
            or_(DataObject.sha256 == digest, DataObject.source_sha256 == digest)
            if kind == "sha256"
            else DataObject.md5 == digest
        )
        with self.database.sessions() as session:
            return builtins.list(session.scalars(select(DataObject).where(matches).order_by(DataObject.id)))

    def participant_by_source(self, dataset_id: str, source_key: str) -> Participant:
        """The participant whose sample name in the steward's files has this keyed hash (``consent find``)."""
        with self.database.sessions() as session:
            self.get(dataset_id, session)
            row = session.scalar(
                select(Participant).where(Participant.dataset_id == dataset_id, Participant.source_key == source_key)
            )
        if row is None:
            raise NotFound(f"no participant of {dataset_id} has that source id (spelled as in the ingested files?)")
        return row

    def get(self, dataset_id: str, session: Session | None = None) -> Dataset:
        if session is None:
            with self.database.sessions() as own:
                return self.get(dataset_id, own)
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id!r}")
        return dataset

    def list(self) -> list[Dataset]:
        with self.database.sessions() as session:
            return list(session.scalars(select(Dataset).order_by(Dataset.id)))

    # builtins.list: in the class body below the method, "list" names the method.
    def objects(self, dataset_id: str) -> builtins.list[DataObject]:
        with self.database.sessions() as session:
            self.get(dataset_id, session)
            return list(
                session.scalars(select(DataObject).where(DataObject.dataset_id == dataset_id).order_by(DataObject.name))
            )

    def totals(self) -> tuple[int, int]:
        """Number of objects and their total size, for DRS service-info."""
        with self.database.sessions() as session:
            count, size = session.execute(select(func.count(), func.coalesce(func.sum(DataObject.size), 0))).one()
            return int(count), int(size)
