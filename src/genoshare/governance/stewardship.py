"""What a data steward looks after, per dataset: files, ingests, participants, refusals, pending rewrites, terms.

Read from the tables and the audit log the node keeps anyway; the steward's page (``genoshare.portal``)
shows it. Setting a dataset's terms (licence, data access agreement, citation, committee address) is
audited: what a researcher accepted is recorded by the agreement's digest, so an edit never changes it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from genoshare.audit import AuditLog, Entry
from genoshare.audit.log import ChainReport
from genoshare.errors import InvalidInput, NotFound
from genoshare.governance.notify import MAILBOX
from genoshare.governance.rederive import Blocked
from genoshare.store.db import Database
from genoshare.store.models import DataObject, Dataset, ObjectParticipant, Participant, utcnow
from genoshare.store.privacy_tables import PrivacyAnswer

#: How ``genoshare.access.privacy`` names an answer that left members out because their budget was spent.
BUDGET_EXHAUSTED = "budget exhausted"


@dataclass(frozen=True)
class Ingest:
    at: datetime
    actor: str
    file: str
    records: int | None


@dataclass(frozen=True)
class PersonState:
    pseudonym: str
    status: str
    restrictions: tuple[str, ...]
    updated_at: datetime | None
    files: int


@dataclass(frozen=True)
class Refusals:
    """Beacon answers that left carriers out because their privacy budget for the asker was spent."""

    answers: int
    principals: int


@dataclass(frozen=True)
class DatasetOverview:
    dataset: Dataset
    files: list[DataObject]
    ingests: list[Ingest]
    people: list[PersonState]
    blocked: list[Blocked]
    refusals: Refusals


class Stewardship:
    def __init__(self, database: Database, audit: AuditLog, blocked: Callable[[str], list[Blocked]]) -> None:
        self.database = database
        self.audit = audit
        self.blocked = blocked

    def chain(self) -> ChainReport:
        """The audit chain's verification: every entry's HMAC and link to the one before."""
        return self.audit.verify()

    def overview(self, dataset_id: str) -> DatasetOverview:
        with self.database.sessions() as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:
                raise NotFound(f"no dataset {dataset_id!r}")
            files = list(
                session.scalars(select(DataObject).where(DataObject.dataset_id == dataset_id).order_by(DataObject.id))
            )
            people = [
                PersonState(p.pseudonym, p.consent_status, tuple(p.consent_restrictions or ()), p.consent_updated_at, n)
                for p, n in session.execute(
                    select(Participant, func.count(ObjectParticipant.object_id))
                    .outerjoin(ObjectParticipant, ObjectParticipant.participant_id == Participant.id)
                    .where(Participant.dataset_id == dataset_id)
                    .group_by(Participant.id)
                    .order_by(Participant.pseudonym)
                )
            ]
            refused = session.execute(
                select(func.count(), func.count(func.distinct(PrivacyAnswer.principal))).where(
                    PrivacyAnswer.dataset_id == dataset_id, PrivacyAnswer.reason.startswith(BUDGET_EXHAUSTED)
                )
            ).one()
        ingests = [
            Ingest(e.at, e.actor, e.resource.removeprefix("objects/"), _int((e.details or {}).get("records")))
            for e in self.audit.entries(resource_prefix="objects/")
            if e.action == "ingest" and (e.details or {}).get("dataset") == dataset_id
        ]
        return DatasetOverview(
            dataset, files, ingests, people, self.blocked(dataset_id), Refusals(int(refused[0]), int(refused[1]))
        )

    def set_terms(
        self, dataset_id: str, actor: str, *, license: str, agreement: str, citation: str, committee_email: str
    ) -> Dataset:
        """The dataset's licence, data access agreement, citation and committee address, as the steward sets them."""
        email = committee_email.strip()
        if email and not all(MAILBOX.fullmatch(part.strip()) for part in email.split(",")):
            raise InvalidInput(f"committee e-mail: {email!r} is not a list of addresses")
        with self.database.session() as session:
            dataset = session.get(Dataset, dataset_id)
            if dataset is None:
                raise NotFound(f"no dataset {dataset_id!r}")
            dataset.license, dataset.citation = license.strip()[:200], citation.strip()
            dataset.data_access_agreement, dataset.committee_email = agreement.strip(), email[:320]
            dataset.updated_at = utcnow()
            updated = dataset
        self.audit.record(
            Entry(actor, "datasets.terms", f"datasets/{dataset_id}", "update", "licence, agreement and citation set")
        )
        return updated


def _int(value: object) -> int | None:
    return value if isinstance(value, int) else None
