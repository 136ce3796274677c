"""Access requests: a researcher asks, DUO matching explains, the dataset's committee decides, the node signs.

Outcomes of the DUO matcher drive the workflow: DENY rejects at once (the consent forbids the purpose),
PERMIT on a dataset marked auto-approvable approves at once, everything else waits for the committee.
An approval creates one ``Grant`` per dataset; the node signs a ControlledAccessGrants visa for each, whose
``jti`` is the grant id, so that revoking the row stops every API on its next request.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from genoshare.access.consent import denial_reasons
from genoshare.access.granularity import AccessLevel
from genoshare.access.passports import Identity
from genoshare.access.policy import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS
from genoshare.audit import Entry
from genoshare.duo.codes import parse_dataset_codes
from genoshare.duo.decision import Outcome
from genoshare.duo.matching import match
from genoshare.duo.purpose import ResearchPurpose
from genoshare.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from genoshare.node import Node
from genoshare.store.models import AccessRequest, Dataset, ExcludedParticipant, Grant, Participant, utcnow

#: Grants without a TS time limit or an explicit expiry last a year, then need renewing.
DEFAULT_GRANT_DAYS = 365
AUTO_APPROVER = "genoshare (auto-approval: DUO match permits, dataset policy allows)"
#: Who acts from the node's own command line: the operator, trusted as steward of every dataset.
STEWARD = "steward@cli"


@dataclass(frozen=True)
class NewRequest:
    datasets: Sequence[str]
    purpose: ResearchPurpose
    project_title: str
    institution: str


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
    def __init__(self, node: Node) -> None:
        self.node = node

    # -- researchers -------------------------------------------------------------------------------

    def submit(self, identity: Identity, new: NewRequest) -> AccessRequest:
        if not identity.visas_of_type(RESEARCHER_STATUS):
            raise PermissionDenied("access requests need a passport with a ResearcherStatus visa")
        if not new.datasets:
            raise InvalidInput("name at least one dataset")
        if not new.project_title.strip() or not new.institution.strip():
            raise InvalidInput("a request needs a project title and an institution")
        purpose = new.purpose.model_copy(update={"requester_id": identity.actor, "institution": new.institution})
        results: dict[str, Any] = {}
        outcomes: list[Outcome] = []
        with self.node.database.sessions() as session:
            datasets = [self._dataset(session, dataset_id) for dataset_id in dict.fromkeys(new.datasets)]
        for dataset in datasets:
            if dataset.access_level != AccessLevel.CONTROLLED:
                raise InvalidInput(f"dataset {dataset.id} is {dataset.access_level}: it needs no access request")
            codes = parse_dataset_codes(dataset.duo_codes)
            result = match(purpose, codes)
            results[dataset.id] = {
                **result.to_dict(),
                "excluded_participants": self._excluded(dataset, purpose),
            }
            outcomes.append(result.outcome)
        request = AccessRequest(
            id=str(uuid.uuid4()),
            requester=identity.actor,
            datasets=[d.id for d in datasets],
            purpose=purpose.model_dump(mode="json"),
            project_title=new.project_title.strip(),
            institution=new.institution.strip(),
            status="pending",
            match=results,
        )
        with self.node.database.session() as session:
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
            return self.approve(request.id, AUTO_APPROVER, expires_on=None, check_member=False)
        return request

    def visible_to(self, actor: str) -> list[AccessRequest]:
        """Requests the actor made, or that concern a dataset whose committee the actor sits on."""
        with self.node.database.sessions() as session:
            committees = {d.id for d in session.scalars(select(Dataset)) if actor in (d.committee or [])}
            requests = list(session.scalars(select(AccessRequest).order_by(AccessRequest.created_at)))
        if actor == STEWARD:
            return requests
        return [r for r in requests if r.requester == actor or committees & set(r.datasets)]

    def get(self, request_id: str, actor: str) -> AccessRequest:
        for request in self.visible_to(actor):
            if request.id == request_id:
                return request
        raise NotFound(f"no access request {request_id!r} visible to you")

    # -- committees --------------------------------------------------------------------------------

    def approve(
        self, request_id: str, actor: str, expires_on: dt.date | None, *, check_member: bool = True
    ) -> AccessRequest:
        request = self._pending(request_id)
        if check_member:
            self.require_member(actor, request.datasets)
        limits = [dt.date.fromisoformat(day) for r in request.match.values() if (day := r.get("expires_on"))]
        end = min([expires_on or dt.date.today() + dt.timedelta(days=DEFAULT_GRANT_DAYS), *limits])
        if end <= dt.date.today():
            raise InvalidInput(f"the grant would expire on {end}, which is not in the future")
        expires_at = dt.datetime.combine(end, dt.time(23, 59, 59), tzinfo=dt.UTC)
        with self.node.database.session() as session:
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
                    )
                )
            stored = session.get(AccessRequest, request.id)
            assert stored is not None
            stored.expires_at = expires_at
        return self._decide(request.id, actor, "approved", f"approved until {end}")

    def reject(self, request_id: str, actor: str, reason: str) -> AccessRequest:
        request = self._pending(request_id)
        self.require_member(actor, request.datasets)
        if not reason.strip():
            raise InvalidInput("say why the request is rejected")
        return self._decide(request.id, actor, "rejected", reason.strip())

    def revoke(self, request_id: str, actor: str, reason: str) -> AccessRequest:
        with self.node.database.sessions() as session:
            request = session.get(AccessRequest, request_id)
        if request is None:
            raise NotFound(f"no access request {request_id!r}")
        if request.status != "approved":
            raise Conflict(f"request {request_id} is {request.status}; only approved requests can be revoked")
        self.require_member(actor, request.datasets)
        now = utcnow()
        with self.node.database.session() as session:
            for grant in session.scalars(select(Grant).where(Grant.request_id == request_id)):
                grant.revoked_at, grant.revoked_by = now, actor
        return self._decide(request_id, actor, "revoked", reason.strip() or "revoked")

    # -- the node as visa issuer --------------------------------------------------------------------

    def active_grants(self, actor: str) -> list[Grant]:
        now = utcnow()
        with self.node.database.sessions() as session:
            grants = session.scalars(select(Grant).where(Grant.grantee == actor, Grant.revoked_at.is_(None)))
            return [g for g in grants if _aware(g.expires_at) > now]

    def passport(self, identity: Identity) -> dict[str, Any]:
        """A node-signed passport holding a ControlledAccessGrants visa for each of the caller's grants."""
        grants = self.active_grants(identity.actor)
        issuer = self.node.issuer
        now = int(utcnow().timestamp())
        visas = [
            issuer.visa(
                identity.subject,
                CONTROLLED_ACCESS_GRANTS,
                f"{self.node.settings.public_url}/datasets/{grant.dataset_id}",
                by="dac",
                asserted=int(_aware(grant.issued_at).timestamp()),
                lifetime=max(60, int(_aware(grant.expires_at).timestamp()) - now),
                jti=grant.id,
            )
            for grant in grants
        ]
        lifetime = min([3600, *(int(_aware(g.expires_at).timestamp()) - now for g in grants)])
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
        with self.node.database.sessions() as session:
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

    def _pending(self, request_id: str) -> AccessRequest:
        with self.node.database.sessions() as session:
            request = session.get(AccessRequest, request_id)
        if request is None:
            raise NotFound(f"no access request {request_id!r}")
        if request.status != "pending":
            raise Conflict(f"request {request_id} is already {request.status}")
        return request

    def require_member(self, actor: str, dataset_ids: Sequence[str]) -> None:
        if actor == STEWARD:
            return
        with self.node.database.sessions() as session:
            for dataset_id in dataset_ids:
                if actor not in (self._dataset(session, dataset_id).committee or []):
                    raise PermissionDenied(f"you are not on the access committee of dataset {dataset_id}")

    def _decide(self, request_id: str, actor: str, status: str, reason: str) -> AccessRequest:
        with self.node.database.session() as session:
            request = session.get(AccessRequest, request_id)
            assert request is not None
            request.status, request.decided_by, request.decided_at, request.reason = status, actor, utcnow(), reason
        self._audit(actor, _ACTIONS[status], request, status, reason)
        return request

    def _audit(self, actor: str, action: str, request: AccessRequest, decision: str, reason: str) -> None:
        for dataset_id in request.datasets:
            self.node.audit.record(
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
