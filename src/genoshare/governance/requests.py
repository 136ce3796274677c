"""Access requests: a researcher asks, DUO matching explains, the dataset's committee decides, the node signs.

Outcomes of the DUO matcher drive the workflow: DENY rejects at once (the consent forbids the purpose),
PERMIT on a dataset marked auto-approvable approves at once, everything else waits for the committee.
An approval creates one ``Grant`` per dataset; the node signs a ControlledAccessGrants visa for each, whose
``jti`` is the grant id, so that revoking the row stops every API on its next request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

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
from genoshare.store.db import Database
from genoshare.store.models import AccessRequest, Dataset, ExcludedParticipant, Grant, Participant, utcnow

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
    }


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


class AccessRequests:
    """The request workflow; who may take each step is decided by ``access`` (``RequestAccess``)."""

    def __init__(
        self, database: Database, audit: AuditLog, issuer: VisaIssuer, public_url: str, access: RequestAccess
    ) -> None:
        self.database = database
        self.audit = audit
        self.issuer = issuer
        self.public_url = public_url
        self.access = access

    # -- researchers -------------------------------------------------------------------------------

    def submit(self, identity: Identity, new: NewRequest) -> AccessRequest:
        self.access.require_submitter(identity)
        if not new.datasets:
            raise InvalidInput("name at least one dataset")
        if not new.project_title.strip() or not new.institution.strip():
            raise InvalidInput("a request needs a project title and an institution")
        country, sector = new.country.strip().upper(), new.sector.strip()
        if country and (len(country) != 2 or not country.isalpha()):
            raise InvalidInput(f"country must be an ISO 3166-1 two-letter code (e.g. GB), not {new.country!r}")
        if sector and sector not in SECTORS:
            raise InvalidInput(f"sector must be one of {', '.join(SECTORS)}, not {sector!r}")
        purpose = new.purpose.model_copy(update={"requester_id": identity.actor, "institution": new.institution})
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
            id=str(uuid.uuid4()),
            requester=identity.actor,
            datasets=[d.id for d in datasets],
            purpose=purpose.model_dump(mode="json"),
            project_title=new.project_title.strip(),
            institution=new.institution.strip(),
            status="pending",
            match=results,
            country=country,
            sector=sector,
            affiliation=", ".join(visa.value for visa in affiliations)[:500],
            contact_email=new.contact_email.strip()[:320],
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

    def _approve(self, request: AccessRequest, decided_by: str, expires_on: dt.date | None) -> AccessRequest:
        limits = [dt.date.fromisoformat(day) for r in request.match.values() if (day := r.get("expires_on"))]
        end = min([expires_on or dt.date.today() + dt.timedelta(days=DEFAULT_GRANT_DAYS), *limits])
        if end <= dt.date.today():
            raise InvalidInput(f"the grant would expire on {end}, which is not in the future")
        expires_at = dt.datetime.combine(end, dt.time(23, 59, 59), tzinfo=dt.UTC)
        with self.database.session() as session:
            for dataset_id in request.datasets:
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
                    )
                )
            stored = session.get(AccessRequest, request.id)
            assert stored is not None
            stored.expires_at = expires_at
        return self._decide(request.id, decided_by, "approved", f"approved until {end}")

    def reject(self, request_id: str, caller: Caller, reason: str) -> AccessRequest:
        request = self._to_decide(request_id, caller, "pending")
        if not reason.strip():
            raise InvalidInput("say why the request is rejected")
        return self._decide(request.id, caller.actor, "rejected", reason.strip())

    def revoke(self, request_id: str, caller: Caller, reason: str) -> AccessRequest:
        self._to_decide(request_id, caller, "approved")
        now = utcnow()
        with self.database.session() as session:
            for grant in session.scalars(select(Grant).where(Grant.request_id == request_id)):
                grant.revoked_at, grant.revoked_by = now, caller.actor
        return self._decide(request_id, caller.actor, "revoked", reason.strip() or "revoked")

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

    def _decide(self, request_id: str, actor: str, status: str, reason: str) -> AccessRequest:
        with self.database.session() as session:
            request = session.get(AccessRequest, request_id)
            assert request is not None
            request.status, request.decided_by, request.decided_at, request.reason = status, actor, utcnow(), reason
        self._audit(actor, _ACTIONS[status], request, status, reason)
        return request

    def _audit(self, actor: str, action: str, request: AccessRequest, decision: str, reason: str) -> None:
        for dataset_id in request.datasets:
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


_ACTIONS = {"approved": "access.approve", "rejected": "access.reject", "revoked": "access.revoke"}


def _summary(results: dict[str, Any]) -> str:
    return "; ".join(f"{dataset} {result['outcome']}" for dataset, result in results.items())
