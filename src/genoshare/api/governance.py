"""Routes for access requests, committee decisions, the node's JWKS, and participants' dynamic consent.

Researchers and committee members authenticate with passports; participants with their own secret token.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from genoshare.access.passports import Identity
from genoshare.api.deps import IdentityDep, NodeDep
from genoshare.duo.purpose import ResearchPurpose
from genoshare.errors import Unauthenticated
from genoshare.governance.consent import ConsentService
from genoshare.governance.rederive import RederivationWorker
from genoshare.governance.requests import AccessRequests, NewRequest, view
from genoshare.governance.usage import usage

router = APIRouter(
    tags=["Governance"],
    responses={
        401: {"description": "No passport (or consent token), or one that does not verify."},
        403: {"description": "Not allowed: no ResearcherStatus visa, or not on the dataset's committee."},
        404: {"description": "No such request, dataset or participant."},
        409: {"description": "The request is not in a state that allows this step."},
    },
)


class StrictBody(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class RequestBody(BaseModel):
    """Not strict: the purpose holds dates, which JSON can only carry as strings."""

    model_config = ConfigDict(extra="forbid")

    datasets: list[str] = Field(min_length=1, max_length=100)
    purpose: ResearchPurpose
    project_title: str = Field(min_length=1, max_length=500)
    institution: str = Field(min_length=1, max_length=500)


class ApproveBody(StrictBody):
    expires_on: dt.date | None = Field(
        default=None, strict=False, description="Last day of access (YYYY-MM-DD); default one year."
    )


class ReasonBody(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)


class NarrowBody(StrictBody):
    codes: list[str] = Field(min_length=1, max_length=20, description="DUO modifiers such as NCU, NPU, NPOA.")


def _caller(identity: Identity | None) -> Identity:
    if identity is None:
        raise Unauthenticated("send your GA4GH passport as a bearer token")
    return identity


@router.get("/.well-known/jwks.json", summary="Keys that verify the visas this node signs")
def jwks(node: NodeDep) -> dict[str, Any]:
    return node.issuer.jwks()


@router.post("/governance/requests", status_code=201, summary="Request access to controlled datasets")
def submit(node: NodeDep, identity: IdentityDep, body: Annotated[RequestBody, Body()]) -> dict[str, Any]:
    new = NewRequest(body.datasets, body.purpose, body.project_title, body.institution)
    return view(AccessRequests(node).submit(_caller(identity), new))


@router.get("/governance/requests", summary="Your requests, and those your committees decide")
def list_requests(
    node: NodeDep, identity: IdentityDep, status: Annotated[str | None, Query(max_length=16)] = None
) -> list[dict[str, Any]]:
    requests = AccessRequests(node).visible_to(_caller(identity).actor)
    return [view(r) for r in requests if status is None or r.status == status]


@router.get("/governance/requests/{request_id}", summary="One access request with its DUO match")
def get_request(request_id: str, node: NodeDep, identity: IdentityDep) -> dict[str, Any]:
    return view(AccessRequests(node).get(request_id, _caller(identity).actor))


@router.post("/governance/requests/{request_id}/approve", summary="Approve (committee members)")
def approve(
    request_id: str, node: NodeDep, identity: IdentityDep, body: Annotated[ApproveBody, Body()]
) -> dict[str, Any]:
    return view(AccessRequests(node).approve(request_id, _caller(identity).actor, body.expires_on))


@router.post("/governance/requests/{request_id}/reject", summary="Reject with a reason (committee members)")
def reject(
    request_id: str, node: NodeDep, identity: IdentityDep, body: Annotated[ReasonBody, Body()]
) -> dict[str, Any]:
    return view(AccessRequests(node).reject(request_id, _caller(identity).actor, body.reason))


@router.post("/governance/requests/{request_id}/revoke", summary="Revoke an approval (committee members)")
def revoke(
    request_id: str, node: NodeDep, identity: IdentityDep, body: Annotated[ReasonBody, Body()]
) -> dict[str, Any]:
    return view(AccessRequests(node).revoke(request_id, _caller(identity).actor, body.reason))


@router.get("/governance/passport", summary="A passport with the grants this node gave you, signed by the node")
def passport(node: NodeDep, identity: IdentityDep) -> dict[str, Any]:
    return AccessRequests(node).passport(_caller(identity))


@router.get("/governance/datasets/{dataset_id}/usage", summary="Who used this dataset (its committee)")
def dataset_usage(
    dataset_id: str,
    node: NodeDep,
    identity: IdentityDep,
    grant: Annotated[str | None, Query(description="Only the uses that relied on this grant (its visa jti).")] = None,
) -> list[dict[str, Any]]:
    AccessRequests(node).require_member(_caller(identity).actor, [dataset_id])
    return [use.as_dict() for use in usage(node, dataset_id, grant=grant)]


ConsentToken = Annotated[str | None, Header(alias="X-Consent-Token", description="Your consent link's secret.")]


@router.get("/consent", summary="Your consent record (participants)")
def my_consent(node: NodeDep, token: ConsentToken = None) -> dict[str, Any]:
    service = ConsentService(node)
    return service.record(service.by_token(token)).as_dict()


@router.post("/consent/narrow", summary="Narrow your consent, e.g. no commercial use (participants)")
def narrow(node: NodeDep, body: Annotated[NarrowBody, Body()], token: ConsentToken = None) -> dict[str, Any]:
    service = ConsentService(node)
    participant = service.by_token(token)
    return service.narrow(participant, body.codes, f"participant:{participant.pseudonym}").as_dict()


@router.post("/consent/widen", summary="Lift a narrowing you made earlier, e.g. NCU (participants)")
def widen(node: NodeDep, body: Annotated[NarrowBody, Body()], token: ConsentToken = None) -> dict[str, Any]:
    service = ConsentService(node)
    participant = service.by_token(token)
    return service.widen(participant, body.codes, f"participant:{participant.pseudonym}").as_dict()


@router.post("/consent/withdraw", summary="Withdraw your consent; takes effect at once (participants)")
def withdraw(node: NodeDep, request: Request, token: ConsentToken = None) -> dict[str, Any]:
    service = ConsentService(node)
    participant = service.by_token(token)
    result = service.withdraw(participant, f"participant:{participant.pseudonym}")
    worker: RederivationWorker = request.app.state.rederivations
    worker.submit(result.rederiving)
    beacon = getattr(request.app.state, "beacon", None)
    if beacon is not None:
        # Beacon re-reads consent within half a second anyway; this makes it immediate.
        beacon.invalidate(participant.dataset_id)
    return {**result.record.as_dict(), "unavailable": list(result.unavailable), "rederiving": list(result.rederiving)}


@router.get("/consent/usage", summary="Who used your data (participants)")
def my_usage(node: NodeDep, token: ConsentToken = None) -> list[dict[str, Any]]:
    participant = ConsentService(node).by_token(token)
    return [use.as_dict() for use in usage(node, participant.dataset_id, participant.pseudonym)]
