"""The access decision. Every API calls ``AccessPolicy``; none decides on its own.

Rules: public datasets are open to anyone at record level; registered datasets need a
ResearcherStatus visa for records; controlled datasets need a ControlledAccessGrants visa naming the
dataset for records, and give counts to registered researchers and a yes/no to everybody else.
Each decision that gates data is written to the audit log with its reason.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Text, bindparam, cast, event, select
from sqlalchemy.orm import Session, sessionmaker

from genoshare.access.consent import ConsentExclusions
from genoshare.access.granularity import AccessLevel, Granularity
from genoshare.access.passports import ANONYMOUS, CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS, Identity, Visa
from genoshare.access.tickets import Ticket
from genoshare.audit import AuditLog, Entry
from genoshare.errors import GenoshareError, PermissionDenied, Unauthenticated
from genoshare.store.db import Database
from genoshare.store.models import DataObject, Dataset, Grant, ObjectParticipant, Participant

WITHDRAWN = "withdrawn"
_PARTICIPANTS = Participant.__table__
_LINKS = ObjectParticipant.__table__
# Read on every DRS and htsget request: one precompiled Core statement on a pooled connection, where an ORM
# session cost several times the query. The narrowing comes as its stored JSON text, decoded only when it is
# not empty (a cohort's people mostly have none).
_PEOPLE_OF_OBJECT = (
    select(_PARTICIPANTS.c.pseudonym, _PARTICIPANTS.c.consent_status, cast(_PARTICIPANTS.c.consent_restrictions, Text))
    .join(_LINKS, _LINKS.c.participant_id == _PARTICIPANTS.c.id)
    .where(_LINKS.c.object_id == bindparam("object_id"))
)
_DATASET_CODES = select(Dataset.__table__.c.duo_codes).where(Dataset.__table__.c.id == bindparam("dataset_id"))
#: Stored texts of a narrowing that narrows nothing.
_NO_NARROWING = (None, "[]", "null")


@dataclass(frozen=True)
class Decision:
    dataset_id: str
    granularity: Granularity
    reason: str
    #: The ids (jti) of the grant visas the decision relied on; tickets carry them for revocation checks.
    grants: tuple[str, ...] = ()


class _GrantChanges:
    """A counter bumped whenever this process writes a ``Grant`` row (flush and commit)."""

    generation = 0

    @classmethod
    def bump(cls, *_: Any) -> None:
        cls.generation += 1


def _grant_written(session: Session, _context: Any, _instances: Any = None) -> None:
    if any(isinstance(row, Grant) for row in (*session.new, *session.dirty, *session.deleted)):
        session.info["grants_changed"] = True
        _GrantChanges.bump()


def _committed(session: Session) -> None:
    if session.info.pop("grants_changed", False):
        _GrantChanges.bump()


def _bulk_write(state: Any) -> None:
    if (state.is_update or state.is_delete) and any(mapper.class_ is Grant for mapper in state.all_mappers):
        state.session.info["grants_changed"] = True
        _GrantChanges.bump()


#: What ``watch_grant_writes`` listens to on a node's sessions: unit-of-work flushes, commits, bulk UPDATE/DELETE.
GRANT_LISTENERS: tuple[tuple[str, Callable[..., None]], ...] = (
    ("before_flush", _grant_written),
    ("after_commit", _committed),
    ("do_orm_execute", _bulk_write),
)


def watch_grant_writes(sessions: sessionmaker[Session]) -> None:
    """Bump the grant generation on writes through ``sessions`` (a node's), once however often it is called.

    On the node's own sessionmaker, not SQLAlchemy's global ``Session`` class: importing this module changes
    no one else's sessions, and other databases in the process (a test's, a tool's) cost nothing.
    """
    for name, listener in GRANT_LISTENERS:
        if not event.contains(sessions, name, listener):
            event.listen(sessions, name, listener)


class RevokedGrants:
    """Whether a grant this node signed is revoked, without a database read on every request.

    Each id's answer is remembered for at most ``max_age`` seconds, and forgotten at once when this process
    writes any grant (a committee's revocation through the API): in-process revocations take effect on
    the next request, those written by another process (the CLI) within ``max_age``, as consent
    withdrawals do. The read cost ~0.5 ms, a quarter of a Beacon answer for a caller with a grant.
    """

    def __init__(self, database: Database, max_age: float = 0.5) -> None:
        self.database = database
        self.max_age = max_age
        watch_grant_writes(database.sessions)
        self._known: dict[str, tuple[int, float, bool]] = {}
        self._lock = threading.Lock()

    def of(self, grant_ids: Iterable[str]) -> set[str]:
        ids = [grant_id for grant_id in grant_ids if grant_id]
        if not ids:
            return set()
        generation, now = _GrantChanges.generation, time.monotonic()
        known = [self._known.get(grant_id) for grant_id in ids]
        if all(k is not None and k[0] == generation and now - k[1] < self.max_age for k in known):
            return {grant_id for grant_id, k in zip(ids, known, strict=True) if k is not None and k[2]}
        revoked = self.read(ids)
        with self._lock:
            if len(self._known) > 100_000:
                self._known.clear()
            for grant_id in ids:
                self._known[grant_id] = (generation, now, grant_id in revoked)
        return revoked

    def read(self, grant_ids: Iterable[str]) -> set[str]:
        """The same, read from the database now (for a data read, where one query is noise)."""
        ids = [grant_id for grant_id in grant_ids if grant_id]
        if not ids:
            return set()
        with self.database.sessions() as session:
            return set(session.scalars(select(Grant.id).where(Grant.id.in_(ids), Grant.revoked_at.is_not(None))))


class AccessPolicy:
    def __init__(self, audit: AuditLog, database: Database, public_url: str) -> None:
        self.audit = audit
        self.database = database
        self.public_url = public_url
        self.revocations = RevokedGrants(database)
        self.consent = ConsentExclusions(database)
        postgresql = database.engine.dialect.name == "postgresql"
        self._reads = database.engine.execution_options(isolation_level="AUTOCOMMIT") if postgresql else None

    def read_connection(self) -> Connection:
        """A pooled connection for the reads made on every request, without an ORM session's cost.

        In autocommit on PostgreSQL (one round trip a statement, no BEGIN and ROLLBACK); on SQLite a read
        transaction, which costs nothing to open.
        """
        return (self._reads or self.database.engine).connect()

    def grant_values(self, dataset_id: str) -> set[str]:
        """The visa value that names this dataset: its URL on this node (a grant value is a URL claim).

        A bare id is refused: ``demo-cohort`` granted by another DAC for its own dataset of that name must
        not open this node's.
        """
        return {f"{self.public_url}/datasets/{dataset_id}"}

    def _grants_for(self, identity: Identity, dataset_id: str) -> list[Visa]:
        names = self.grant_values(dataset_id)
        visas = [visa for visa in identity.visas_of_type(CONTROLLED_ACCESS_GRANTS) if visa.value in names]
        withdrawn = self.revoked_grants([visa.jti for visa in visas])
        return [visa for visa in visas if visa.jti not in withdrawn]

    def revoked_grants(self, grant_ids: Iterable[str]) -> set[str]:
        """Which of these visa ids are grants this node signed and has since revoked.

        Visas of other issuers are not in the table and pass: their issuer revokes them by expiry.
        """
        return self.revocations.of(grant_ids)

    def check_ticket(self, ticket: Ticket) -> None:
        """Re-check, on every data request, what may have changed since a ticket was issued."""
        if self.revocations.read(ticket.grants):
            self.audit.record(
                Entry(
                    ticket.actor,
                    "data.read",
                    f"objects/{ticket.object_id}",
                    "deny",
                    "grant revoked",
                    {"dataset": ticket.dataset_id},
                )
            )
            raise _audited(PermissionDenied(f"the grant for dataset {ticket.dataset_id} was revoked"))

    def check_object(self, row: DataObject, grants: Iterable[str] = ()) -> frozenset[str]:
        """Close files whose people all withdrew or are excluded from the grants relied on.

        Returns the pseudonyms of the people in the file whose narrowed consent excludes those grants
        (``genoshare.access.consent``, read now): the file may only be served without them.  Files being
        re-derived are closed to everyone until the rewrite is done.
        """
        if row.status != "available":
            raise PermissionDenied(
                f"{row.id} is being re-derived without a participant who withdrew consent; try again later"
            )
        grant_ids = [grant for grant in grants if grant]
        with self.read_connection() as connection:
            people = [
                (name, status, () if extra in _NO_NARROWING else tuple(json.loads(extra)))
                for name, status, extra in connection.execute(_PEOPLE_OF_OBJECT, {"object_id": row.id}).all()
            ]
            narrowed = any(status != WITHDRAWN and extra for _, status, extra in people)
            codes = (
                connection.execute(_DATASET_CODES, {"dataset_id": row.dataset_id}).scalar_one_or_none()
                if narrowed
                else []
            )
        if not people:
            return frozenset()
        if all(status == WITHDRAWN for _, status, _ in people):
            raise PermissionDenied(f"{row.id} holds only data of participants who withdrew consent")
        active = {name: extra for name, status, extra in people if status != WITHDRAWN}
        excluded = self.consent.excluded(row.dataset_id, grant_ids, active, codes or []) if narrowed else frozenset()
        if excluded and excluded >= active.keys():
            raise PermissionDenied(f"{row.id} holds only data of participants whose consent excludes this use")
        return excluded

    def hidden_people(self, dataset_id: str, decision: Decision) -> frozenset[str]:
        """Pseudonyms that answers to a caller with this decision leave out: their consent excludes its grants."""
        return self.consent.in_dataset(dataset_id, decision.grants)

    def granularity(self, identity: Identity | None, dataset: Dataset) -> Decision:
        """The most a caller may see of ``dataset``; pure, no audit."""
        level = dataset.access_level
        if level == AccessLevel.PUBLIC:
            return Decision(dataset.id, Granularity.RECORD, "public dataset")
        if identity is None:
            return Decision(dataset.id, Granularity.BOOLEAN, f"{level} dataset, anonymous caller")
        researcher = bool(identity.visas_of_type(RESEARCHER_STATUS))
        if level == AccessLevel.REGISTERED:
            if researcher:
                return Decision(dataset.id, Granularity.RECORD, "registered dataset, ResearcherStatus visa")
            return Decision(dataset.id, Granularity.BOOLEAN, "registered dataset, no ResearcherStatus visa")
        grants = self._grants_for(identity, dataset.id)
        if grants:
            return Decision(
                dataset.id,
                Granularity.RECORD,
                "ControlledAccessGrants visa for this dataset",
                tuple(visa.jti for visa in grants),
            )
        if researcher:
            return Decision(dataset.id, Granularity.COUNT, "controlled dataset, ResearcherStatus visa without grant")
        return Decision(dataset.id, Granularity.BOOLEAN, "controlled dataset, no grant")

    def require(
        self, identity: Identity | None, dataset: Dataset, needed: Granularity, *, action: str, resource: str
    ) -> Decision:
        """Allow or raise (401 without credentials, 403 with insufficient ones); audited either way.

        An anonymous refusal costs the caller nothing, so it is left to the API's refusal log, which counts
        repeats in one entry (``genoshare.audit.denials``) under the action and resource named here.
        """
        decision = self.granularity(identity, dataset)
        allowed = decision.granularity >= needed
        details: dict[str, object] = {
            "dataset": dataset.id,
            "granularity": decision.granularity.name.lower(),
            "grants": list(decision.grants),
        }
        if not allowed and identity is None:
            error = Unauthenticated(f"dataset {dataset.id} is {dataset.access_level}: send a GA4GH passport")
            error.audit_as = (action, resource, details)
            raise error
        self.audit.record(
            Entry(
                actor=identity.actor if identity else ANONYMOUS,
                action=action,
                resource=resource,
                decision="permit" if allowed else "deny",
                reason=decision.reason,
                details=details,
            )
        )
        if allowed:
            return decision
        raise _audited(PermissionDenied(f"access to dataset {dataset.id} denied: {decision.reason}"))

    def decisions(self, identity: Identity | None, datasets: Iterable[Dataset]) -> list[Decision]:
        return [self.granularity(identity, dataset) for dataset in datasets]


def _audited(error: GenoshareError) -> GenoshareError:
    """Mark a denial this module has written to the audit log (the API logs the others)."""
    error.audited = True
    return error
