"""What a data steward looks after, per dataset: files, ingests, participants, refusals, pending rewrites, terms.

Across datasets, the people whose Beacon questions looked like a membership attack (``flags``).

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
from genoshare.store.privacy_tables import PrivacyAnswer, PrivacyWatch

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
class AttackFlag:
    """A person whose questions on one dataset looked like a membership attack (``access.attack_watch``)."""

    dataset_id: str
    #: Whose budget they spend: the person, with every identity linked to them.
    person: str
    #: The identity (``subject@issuer``) that asked the question which raised the flag.
    account: str
    at: datetime
    #: Of the person's questions on rare variants when flagged, how many fell on one participant's.
    top_hits: int
    rare_questions: int


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

    def flags(self) -> list[AttackFlag]:
        """People flagged for questions that look like a membership attack, newest first."""
        with self.database.sessions() as session:
            rows = session.scalars(
                select(PrivacyWatch)
                .where(PrivacyWatch.flagged_at.is_not(None))
                .order_by(PrivacyWatch.flagged_at.desc())
            ).all()
        return [
            AttackFlag(
                row.dataset_id,
                row.principal,
                row.account or row.principal,
                row.flagged_at,
                row.top_hits or 0,
                row.rare_questions,
            )
            for row in rows
            if row.flagged_at is not None
        ]

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
