"""Access requests: a researcher asks, DUO matching explains, the dataset's committee decides, the node signs.

Outcomes of the DUO matcher drive the workflow: DENY rejects at once (the consent forbids the purpose),
PERMIT on a dataset marked auto-approvable approves at once, everything else waits for the committee.
An approval creates one ``Grant`` per dataset; the node signs a ControlledAccessGrants visa for each, whose
``jti`` is the grant id, so that revoking the row stops every API on its next request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from genoshare.access.consent import denial_reasons
from genoshare.access.granularity import AccessLevel
from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS, Identity
from genoshare.access.requests import RequestAccess
from genoshare.access.roles import Caller
from genoshare.audit import AuditLog, Entry
from genoshare.duo.codes import parse_dataset_codes
from genoshare.duo.decision import Outcome
from genoshare.duo.matching import match
from genoshare.duo.purpose import ResearchPurpose
from genoshare.errors import Conflict, InvalidInput, NotFound
from genoshare.governance.notify import MAILBOX, Notice, Notifier, addresses
from genoshare.store.db import Database
from genoshare.store.models import (
    AccessRequest,
    Dataset,
    DatasetDecision,
    ExcludedParticipant,
    Grant,
    Participant,
    utcnow,
)

#: Grants without a TS time limit or an explicit expiry last a year, then need renewing.
DEFAULT_GRANT_DAYS = 365
AUTO_APPROVER = "genoshare (auto-approval: DUO match permits, dataset policy allows)"


#: Who a requester works for, as the access report groups requests (``AccessRequest.sector``).
SECTORS = ("academic", "public", "non-profit", "clinical", "commercial")
AFFILIATION_AND_ROLE = "AffiliationAndRole"


@dataclass(frozen=True)
class NewRequest:
    datasets: Sequence[str]
    purpose: ResearchPurpose
    project_title: str
    institution: str
    #: ISO 3166-1 alpha-2 country of the requester's institution, and its sector (``SECTORS``), if given.
    country: str = ""
    sector: str = ""
    #: Where the requester wants to hear of decisions.
    contact_email: str = ""
    #: Dataset -> sha256 of the data access agreement text the requester read and accepted.
    accepted_agreements: Mapping[str, str] = field(default_factory=dict)


#: What a sender may name a request by (``submit_once``): printable ASCII, as an HTTP header carries it.
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}")
#: The namespace of keyed requests' ids.
KEYED_REQUESTS = uuid.UUID("6f0c7c52-7a39-4c55-9d0e-3b1f7e5a2c11")


def keyed_id(requester: str, key: str) -> str:
    """The id of ``requester``'s request under idempotency ``key``: one per requester and key, none shared."""
    return str(uuid.uuid5(KEYED_REQUESTS, f"{requester}\n{key}"))


def _purpose(identity: Identity, new: NewRequest) -> ResearchPurpose:
    return new.purpose.model_copy(update={"requester_id": identity.actor, "institution": new.institution})


def _as_stored(identity: Identity, new: NewRequest) -> dict[str, Any]:
    """What a request records of what its requester asked: a retry under the same key must ask the same."""
    return {
        "datasets": list(dict.fromkeys(new.datasets)),
        "purpose": _purpose(identity, new).model_dump(mode="json"),
        "project_title": new.project_title.strip(),
        "institution": new.institution.strip(),
        "country": new.country.strip().upper(),
        "sector": new.sector.strip(),
        "contact_email": new.contact_email.strip(),
    }


def agreement_digest(text: str) -> str:
    """What a request records of an agreement: a later edit of the text never changes what was accepted."""
    return hashlib.sha256(text.encode()).hexdigest()


def view(request: AccessRequest) -> dict[str, Any]:
    """The request as requesters and committees see it."""
    return {
        "id": request.id,
        "requester": request.requester,
        "datasets": request.datasets,
        "purpose": request.purpose,
        "project_title": request.project_title,
        "institution": request.institution,
        "status": request.status,
        "match": request.match,
        "created_at": request.created_at.isoformat(),
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
        "decided_by": request.decided_by,
        "reason": request.reason,
        "expires_at": request.expires_at.isoformat() if request.expires_at else None,
        "decisions": request.decisions or {},
    }


def dataset_state(request: AccessRequest, dataset_id: str) -> str:
    """Where one dataset of a request stands: its own decision, or the request's (older requests have none)."""
    decision = (request.decisions or {}).get(dataset_id)
    return decision["status"] if decision is not None else request.status


def _overall(states: Sequence[str]) -> str:
    """A request is pending while any dataset waits, approved while any dataset's grant stands."""
    for state in ("pending", "approved", "revoked"):
        if state in states:
            return state
    return "rejected"


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class AccessRequests:
    """The request workflow; who may take each step is decided by ``access`` (``RequestAccess``)."""

    def __init__(
        self,
        database: Database,
        audit: AuditLog,
        issuer: VisaIssuer,
        public_url: str,
        access: RequestAccess,
        notifier: Notifier | None = None,
    ) -> None:
        self.database = database
        self.audit = audit
        self.issuer = issuer
        self.public_url = public_url
        self.access = access
        #: Tells committees of new requests and requesters of decisions (mail, webhook), if configured.
        self.notifier = notifier

    # -- researchers -------------------------------------------------------------------------------

    def submit(self, identity: Identity, new: NewRequest) -> AccessRequest:
        self.access.require_submitter(identity)
        return self._submit(identity, new, str(uuid.uuid4()))

    def submit_once(self, identity: Identity, new: NewRequest, key: str) -> tuple[AccessRequest, bool]:
        """``new`` under the requester's idempotency ``key``: the request made the first time, never a second.

        A sender that got no answer (another node forwarding it, past its deadline) cannot know whether the
        request was made; sending it again under the same key returns the one made, with False (not made now).
        The key names the request's id (``keyed_id``), so the table's primary key holds two copies sent at
        once to one request. The same key with another request is a ``Conflict``.
        """
        self.access.require_submitter(identity)
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidInput("an idempotency key is 1 to 200 visible ASCII characters (e.g. a UUID)")
        request_id = keyed_id(identity.actor, key)
        made = self._made(request_id, identity, new, key)
        if made is not None:
            return made, False
        try:
            return self._submit(identity, new, request_id), True
        except IntegrityError:  # the same request, sent again before the first one was answered
            made = self._made(request_id, identity, new, key)
            if made is None:  # pragma: no cover - the row the insert collided with is there to read
                raise
            return made, False

    def _made(self, request_id: str, identity: Identity, new: NewRequest, key: str) -> AccessRequest | None:
        """The request already made under ``key``, if any; ``Conflict`` if it asked for something else."""
        with self.database.sessions() as session:
            request = session.get(AccessRequest, request_id)
        if request is None:
            return None
        stated = _as_stored(identity, new)
        same = all(getattr(request, name) == value for name, value in stated.items()) and all(
            new.accepted_agreements.get(dataset) == digest for dataset, digest in (request.agreements or {}).items()
        )
        if not same:
            raise Conflict(
                f"idempotency key {key!r} was used for another request of yours ({request.id}): "
                "a new request needs a new key"
            )
        return request

    def _submit(self, identity: Identity, new: NewRequest, request_id: str) -> AccessRequest:
        if not new.datasets:
            raise InvalidInput("name at least one dataset")
        if not new.project_title.strip() or not new.institution.strip():
            raise InvalidInput("a request needs a project title and an institution")
        stated = _as_stored(identity, new)
        country, sector = stated["country"], stated["sector"]
        if country and (len(country) != 2 or not country.isalpha()):
            raise InvalidInput(f"country must be an ISO 3166-1 two-letter code (e.g. GB), not {new.country!r}")
        if sector and sector not in SECTORS:
            raise InvalidInput(f"sector must be one of {', '.join(SECTORS)}, not {sector!r}")
        # Decisions are mailed there: one mailbox of the requester's, never a list naming others as well.
        contact = stated["contact_email"]
        if contact and (len(contact) > 320 or not MAILBOX.fullmatch(contact)):
            raise InvalidInput(f"contact e-mail must be one address of yours (name@example.org), not {contact!r}")
        purpose = _purpose(identity, new)
        datasets = self._requestable(new.datasets)
        agreements: dict[str, str] = {}
        for dataset in datasets:
            if dataset.data_access_agreement:
                digest = agreement_digest(dataset.data_access_agreement)
                if new.accepted_agreements.get(dataset.id) != digest:
                    raise InvalidInput(f"accept the data access agreement of dataset {dataset.id} (as it reads now)")
                agreements[dataset.id] = digest
        results = {dataset.id: self._match(dataset, purpose) for dataset in datasets}
        outcomes = [Outcome(result["outcome"]) for result in results.values()]
        affiliations = identity.visas_of_type(AFFILIATION_AND_ROLE)
        request = AccessRequest(
            id=request_id,
            requester=identity.actor,
            **{**stated, "datasets": [d.id for d in datasets]},
            status="pending",
            match=results,
            affiliation=", ".join(visa.value for visa in affiliations)[:500],
            agreements=agreements,
        )
        with self.database.session() as session:
            session.add(request)
        self._audit(identity.actor, "access.request", request, "submit", f"DUO match: {_summary(results)}")
        if Outcome.DENY in outcomes:
            denied = [d for d, r in results.items() if r["outcome"] == Outcome.DENY.value]
            return self._decide(
                request.id,
                "genoshare (DUO match)",
                "rejected",
                f"the consent of {', '.join(denied)} does not permit this purpose",
            )
        if all(o is Outcome.PERMIT for o in outcomes) and all(d.auto_approve for d in datasets):
            return self._approve(request, AUTO_APPROVER, None)
        self._notify_submitted(request, datasets)
        return request

    def preview(self, identity: Identity, dataset_ids: Sequence[str], purpose: ResearchPurpose) -> dict[str, Any]:
        """The DUO match a request for these datasets would get now, per dataset, without making one."""
        self.access.require_submitter(identity)
        purpose = purpose.model_copy(update={"requester_id": identity.actor})
        return {dataset.id: self._match(dataset, purpose) for dataset in self._requestable(dataset_ids)}

    def _requestable(self, dataset_ids: Sequence[str]) -> list[Dataset]:
        with self.database.sessions() as session:
            datasets = [self._dataset(session, dataset_id) for dataset_id in dict.fromkeys(dataset_ids)]
        for dataset in datasets:
            if dataset.access_level != AccessLevel.CONTROLLED:
                raise InvalidInput(f"dataset {dataset.id} is {dataset.access_level}: it needs no access request")
        return datasets

    def _match(self, dataset: Dataset, purpose: ResearchPurpose) -> dict[str, Any]:
        result = match(purpose, parse_dataset_codes(dataset.duo_codes))
        return {**result.to_dict(), "excluded_participants": self._excluded(dataset, purpose)}

    def visible_to(self, caller: Caller, status: str | None = None) -> list[AccessRequest]:
        """Requests the caller made, or that concern a dataset whose committee the caller sits on."""
        return self.access.visible(caller, status)

    def get(self, request_id: str, caller: Caller) -> AccessRequest:
        return self.access.visible_one(caller, request_id)

    # -- committees --------------------------------------------------------------------------------

    def approve(self, request_id: str, caller: Caller, expires_on: dt.date | None) -> AccessRequest:
        request = self._to_decide(request_id, caller, "pending")
        return self._approve(request, caller.actor, expires_on)

    def decide_dataset(
        self,
        request_id: str,
        dataset_id: str,
        caller: Caller,
        decision: str,
        note: str = "",
        expires_on: dt.date | None = None,
    ) -> AccessRequest:
        """Decide one dataset of a request on its own; its committee decides, the others wait for theirs.

        ``decision``: ``approve`` (``note``: a note or conditions of use), ``reject`` or ``revoke`` (``note``:
        the reason, which the requester reads).
        """
        if decision not in _FROM:
            raise InvalidInput(f"decide approve, reject or revoke, not {decision!r}")
        with self.database.sessions() as session:
            request = session.get(AccessRequest, request_id)
        if request is None or dataset_id not in request.datasets:
            raise NotFound(f"no dataset {dataset_id!r} in access request {request_id!r}")
        self.access.require_decider(caller, [dataset_id])
        state = dataset_state(request, dataset_id)
        if state != _FROM[decision]:
            raise Conflict(f"dataset {dataset_id} of request {request_id} is {state}: it cannot be {_STATE[decision]}")
        note = note.strip()
        if decision == "approve":
            return self._approve(request, caller.actor, expires_on, [dataset_id], note)
        if not note:
            raise InvalidInput(f"say why you {decision} access to {dataset_id}")
        if decision == "revoke":
            self._revoke_grants(request_id, [dataset_id], caller.actor)
        return self._decide(request_id, caller.actor, _STATE[decision], note, [dataset_id])

    def _approve(
        self,
        request: AccessRequest,
        decided_by: str,
        expires_on: dt.date | None,
        datasets: Sequence[str] | None = None,
        note: str = "",
    ) -> AccessRequest:
        if datasets is None:
            datasets = [d for d in request.datasets if dataset_state(request, d) == "pending"]
        limits = [
            dt.date.fromisoformat(day)
            for dataset_id, r in request.match.items()
            if dataset_id in datasets and (day := r.get("expires_on"))
        ]
        end = min([expires_on or dt.date.today() + dt.timedelta(days=DEFAULT_GRANT_DAYS), *limits])
        if end <= dt.date.today():
            raise InvalidInput(f"the grant would expire on {end}, which is not in the future")
        expires_at = dt.datetime.combine(end, dt.time(23, 59, 59), tzinfo=dt.UTC)
        with self.database.session() as session:
            for dataset_id in datasets:
                entry = request.match.get(dataset_id)
                excluded = entry.get("excluded_participants", []) if entry is not None else []
                session.add(
                    Grant(
                        id=str(uuid.uuid4()),
                        request_id=request.id,
                        dataset_id=dataset_id,
                        grantee=request.requester,
                        expires_at=expires_at,
                        excluded_participants=[person["id"] for person in excluded],
                        agreement_sha256=(request.agreements or {}).get(dataset_id, ""),
                        note=note,
                    )
                )
            stored = session.get(AccessRequest, request.id)
            assert stored is not None
            stored.expires_at = max(expires_at, stored.expires_at or expires_at)
        said = f"approved until {end}" + (f"; {note}" if note else "")
        return self._decide(request.id, decided_by, "approved", said, datasets, expires_at)

    def reject(self, request_id: str, caller: Caller, reason: str) -> AccessRequest:
        request = self._to_decide(request_id, caller, "pending")
        if not reason.strip():
            raise InvalidInput("say why the request is rejected")
        return self._decide(request.id, caller.actor, "rejected", reason.strip())

    def revoke(self, request_id: str, caller: Caller, reason: str) -> AccessRequest:
        request = self._to_decide(request_id, caller, "approved")
        approved = [d for d in request.datasets if dataset_state(request, d) == "approved"]
        self._revoke_grants(request_id, approved, caller.actor)
        return self._decide(request_id, caller.actor, "revoked", reason.strip() or "revoked", approved)

    def _revoke_grants(self, request_id: str, dataset_ids: Sequence[str], actor: str) -> None:
        now = utcnow()
        with self.database.session() as session:
            for grant in session.scalars(
                select(Grant).where(Grant.request_id == request_id, Grant.dataset_id.in_(list(dataset_ids)))
            ):
                if grant.revoked_at is None:
                    grant.revoked_at, grant.revoked_by = now, actor

    # -- the node as visa issuer --------------------------------------------------------------------

    def active_grants(self, actor: str) -> list[Grant]:
        now = utcnow()
        with self.database.sessions() as session:
            grants = session.scalars(select(Grant).where(Grant.grantee == actor, Grant.revoked_at.is_(None)))
            return [g for g in grants if _aware(g.expires_at) > now]

    def passport(self, identity: Identity) -> dict[str, Any]:
        """A node-signed passport: a ControlledAccessGrants visa per grant of the caller, and their ResearcherStatus."""
        grants = self.active_grants(identity.actor)
        issuer = self.issuer
        now = int(utcnow().timestamp())
        visas = [
            issuer.visa(
                identity.subject,
                CONTROLLED_ACCESS_GRANTS,
                f"{self.public_url}/datasets/{grant.dataset_id}",
                by="dac",
                asserted=int(_aware(grant.issued_at).timestamp()),
                lifetime=max(60, int(_aware(grant.expires_at).timestamp()) - now),
                jti=grant.id,
            )
            for grant in grants
        ]
        # The caller's ResearcherStatus rides along as its issuer signed it, so that other nodes accept this
        # passport for requests too (judged against that issuer, never on this node's word), until it expires.
        status = [visa for visa in identity.visas_of_type(RESEARCHER_STATUS) if visa.token]
        visas += list(dict.fromkeys(visa.token for visa in status))
        ends = [int(_aware(g.expires_at).timestamp()) for g in grants] + [visa.expires for visa in status]
        lifetime = min([3600, *(end - now for end in ends)])
        return {
            "passport": issuer.passport(identity.subject, visas, lifetime=max(60, lifetime)),
            "visas": visas,
            "grants": [
                {"id": g.id, "dataset": g.dataset_id, "expires_at": _aware(g.expires_at).isoformat()} for g in grants
            ],
        }

    # -- helpers -----------------------------------------------------------------------------------

    def _excluded(self, dataset: Dataset, purpose: ResearchPurpose) -> list[ExcludedParticipant]:
        """Participants whose own narrowing (e.g. NCU) forbids the purpose the dataset's codes allow.

        Shown to the committee; what is served is decided from the consent of the day (``genoshare.access``).
        """
        with self.database.sessions() as session:
            people = list(session.scalars(select(Participant).where(Participant.dataset_id == dataset.id)))
        excluded: list[ExcludedParticipant] = []
        for person in people:
            reasons = denial_reasons(purpose, dataset.duo_codes, person.consent_restrictions or ())
            if reasons:
                excluded.append({"id": person.id, "participant": person.pseudonym, "reasons": list(reasons)})
        return excluded

    @staticmethod
    def _dataset(session: Any, dataset_id: str) -> Dataset:
        dataset = session.get(Dataset, dataset_id)
        if dataset is None:
            raise NotFound(f"no dataset {dataset_id!r}")
        return dataset

    def _to_decide(self, request_id: str, caller: Caller, status: str) -> AccessRequest:
        """The request, once the caller is shown to decide for its datasets (its state is theirs to know only then)."""
        with self.database.sessions() as session:
            request = session.get(AccessRequest, request_id)
        if request is None:
            raise NotFound(f"no access request {request_id!r}")
        self.access.require_decider(caller, request.datasets)
        if request.status != status:
            if status == "pending":
                raise Conflict(f"request {request_id} is already {request.status}")
            raise Conflict(f"request {request_id} is {request.status}; only {status} requests can be revoked")
        return request

    def _decide(
        self,
        request_id: str,
        actor: str,
        status: str,
        reason: str,
        datasets: Sequence[str] | None = None,
        expires_at: dt.datetime | None = None,
    ) -> AccessRequest:
        """Record ``status`` for ``datasets`` (all those it applies to if None), and the request's own state."""
        now = utcnow()
        with self.database.session() as session:
            request = session.get(AccessRequest, request_id)
            assert request is not None
            if datasets is None:
                datasets = [d for d in request.datasets if dataset_state(request, d) == _FROM[_VERB[status]]]
            decisions = dict(request.decisions or {})
            for dataset_id in datasets:
                decision: DatasetDecision = {"status": status, "by": actor, "at": now.isoformat(), "note": reason}
                if expires_at is not None:
                    decision["expires_at"] = expires_at.isoformat()
                decisions[dataset_id] = decision
            request.decisions = decisions  # a new dict: the JSON column sees the change
            request.status = _overall([dataset_state(request, d) for d in request.datasets])
            request.decided_by, request.decided_at, request.reason = actor, now, reason
        self._audit(actor, _ACTIONS[status], request, status, reason, datasets)
        self._notify_decided(request, datasets, status, reason)
        return request

    def _audit(
        self,
        actor: str,
        action: str,
        request: AccessRequest,
        decision: str,
        reason: str,
        datasets: Sequence[str] | None = None,
    ) -> None:
        for dataset_id in request.datasets if datasets is None else datasets:
            self.audit.record(
                Entry(
                    actor,
                    action,
                    f"datasets/{dataset_id}",
                    decision,
                    reason,
                    {"dataset": dataset_id, "request": request.id, "requester": request.requester},
                )
            )

    # -- notices ------------------------------------------------------------------------------------

    def _inbox(self, request: AccessRequest) -> str:
        return f"{self.public_url}/portal/committee/requests/{request.id}"

    def _notify_submitted(self, request: AccessRequest, datasets: Sequence[Dataset]) -> None:
        """Each committee whose dataset waits for a decision is mailed (its ``committee_email``)."""
        if self.notifier is None:
            return
        titles = ", ".join(f"{d.title} ({d.id})" for d in datasets)
        body = (
            f"{request.requester} ({request.institution}) asks for access to {titles}.\n\n"
            f"Project: {request.project_title}\n"
            f"DUO match: {_summary(dict(request.match))}\n\n"
            f"Decide in the committee inbox: {self._inbox(request)}\n"
        )
        self.notifier.send(
            Notice(
                "access_request.submitted",
                f"New access request: {request.project_title}",
                body,
                addresses([d.committee_email for d in datasets]),
                {"request": request.id, "datasets": list(request.datasets), "url": self._inbox(request)},
            )
        )

    def _notify_decided(self, request: AccessRequest, datasets: Sequence[str], status: str, note: str) -> None:
        """The requester (if they left an address) and the committees hear of every decision."""
        if self.notifier is None or not datasets:
            return
        with self.database.sessions() as session:
            rows = list(session.scalars(select(Dataset).where(Dataset.id.in_(list(datasets)))))
        names = ", ".join(f"{d.title} ({d.id})" for d in rows)
        body = (
            f'The access request "{request.project_title}" by {request.requester} was {status} for {names}.\n'
            + (f"\nThe committee's note: {note}\n" if note else "")
            + f"\nSee the request: {self._inbox(request)}\n"
        )
        self.notifier.send(
            Notice(
                f"access_request.{status}",
                f"Access request {status}: {request.project_title}",
                body,
                addresses([request.contact_email, *(d.committee_email for d in rows)]),
                {"request": request.id, "datasets": list(datasets), "status": status, "note": note},
            )
        )


_ACTIONS = {"approved": "access.approve", "rejected": "access.reject", "revoked": "access.revoke"}
#: What a dataset's state must be for each decision, and each decision's state.
_FROM = {"approve": "pending", "reject": "pending", "revoke": "approved"}
_VERB = {"approved": "approve", "rejected": "reject", "revoked": "revoke"}
_STATE = {verb: state for state, verb in _VERB.items()}


def _summary(results: dict[str, Any]) -> str:
    return "; ".join(f"{dataset} {result['outcome']}" for dataset, result in results.items())
