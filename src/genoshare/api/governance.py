"""Routes for access requests, committee decisions, the node's JWKS, and participants' dynamic consent.

Researchers and committee members authenticate with passports; participants with their own secret token.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from genoshare.access.passports import Identity
from genoshare.api.deps import AccessRequestsDep, ConsentDep, IdentityDep, NodeDep, UsageDep
from genoshare.duo.purpose import ResearchPurpose
from genoshare.errors import Unauthenticated
from genoshare.governance.requests import NewRequest, view
from genoshare.store.models import Participant

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
    country: str = Field(default="", max_length=2, description="ISO 3166-1 alpha-2 country of your institution.")
    sector: str = Field(default="", max_length=32, description="academic, public, non-profit, clinical or commercial.")
    contact_email: str = Field(default="", max_length=320, description="Where to tell you of decisions.")
    accepted_agreements: dict[str, str] = Field(
        default_factory=dict, description="Dataset -> sha256 of the data access agreement you accept."
    )


class ApproveBody(StrictBody):
    expires_on: dt.date | None = Field(
        default=None, strict=False, description="Last day of access (YYYY-MM-DD); default one year."
    )


class ReasonBody(StrictBody):
    reason: str = Field(min_length=1, max_length=2000)


class MatchmakingBody(StrictBody):
    #: Whether clinicians of trusted matchmakers may be shown your record when it resembles their patient's.
    allow: bool


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
def submit(requests: AccessRequestsDep, identity: IdentityDep, body: Annotated[RequestBody, Body()]) -> dict[str, Any]:
    new = NewRequest(
        body.datasets,
        body.purpose,
        body.project_title,
        body.institution,
        body.country,
        body.sector,
        body.contact_email,
        body.accepted_agreements,
    )
    return view(requests.submit(_caller(identity), new))


@router.get("/governance/requests", summary="Your requests, and those your committees decide")
def list_requests(
    requests: AccessRequestsDep, identity: IdentityDep, status: Annotated[str | None, Query(max_length=16)] = None
) -> list[dict[str, Any]]:
    return [view(r) for r in requests.visible_to(_caller(identity), status)]


@router.get("/governance/requests/{request_id}", summary="One access request with its DUO match")
def get_request(request_id: str, requests: AccessRequestsDep, identity: IdentityDep) -> dict[str, Any]:
    return view(requests.get(request_id, _caller(identity)))


@router.post("/governance/requests/{request_id}/approve", summary="Approve (committee members)")
def approve(
    request_id: str, requests: AccessRequestsDep, identity: IdentityDep, body: Annotated[ApproveBody, Body()]
) -> dict[str, Any]:
    return view(requests.approve(request_id, _caller(identity), body.expires_on))


@router.post("/governance/requests/{request_id}/reject", summary="Reject with a reason (committee members)")
def reject(
    request_id: str, requests: AccessRequestsDep, identity: IdentityDep, body: Annotated[ReasonBody, Body()]
) -> dict[str, Any]:
    return view(requests.reject(request_id, _caller(identity), body.reason))


@router.post("/governance/requests/{request_id}/revoke", summary="Revoke an approval (committee members)")
def revoke(
    request_id: str, requests: AccessRequestsDep, identity: IdentityDep, body: Annotated[ReasonBody, Body()]
) -> dict[str, Any]:
    return view(requests.revoke(request_id, _caller(identity), body.reason))


class DecisionBody(StrictBody):
    note: str = Field(
        default="", max_length=4000, description="Approve: a note or conditions; reject or revoke: the reason."
    )
    expires_on: dt.date | None = Field(
        default=None, strict=False, description="Approve: last day of access (YYYY-MM-DD); default one year."
    )


@router.post(
    "/governance/requests/{request_id}/datasets/{dataset_id}/{decision}",
    summary="Decide one dataset of a request: approve, reject or revoke (its committee)",
)
def decide_dataset(
    request_id: str,
    dataset_id: str,
    decision: Annotated[str, Path(pattern="^(approve|reject|revoke)$")],
    requests: AccessRequestsDep,
    identity: IdentityDep,
    body: Annotated[DecisionBody, Body()],
) -> dict[str, Any]:
    decided = requests.decide_dataset(request_id, dataset_id, _caller(identity), decision, body.note, body.expires_on)
    return view(decided)


@router.get("/governance/passport", summary="A passport with the grants this node gave you, signed by the node")
def passport(requests: AccessRequestsDep, identity: IdentityDep) -> dict[str, Any]:
    return requests.passport(_caller(identity))


@router.get("/governance/datasets/{dataset_id}/usage", summary="Who used this dataset (its committee)")
def dataset_usage(
    dataset_id: str,
    node: NodeDep,
    usage: UsageDep,
    identity: IdentityDep,
    grant: Annotated[str | None, Query(description="Only the uses that relied on this grant (its visa jti).")] = None,
) -> list[dict[str, Any]]:
    node.roles.require_committee(_caller(identity), [dataset_id])
    return [use.as_dict() for use in usage.of(dataset_id, grant=grant)]


ConsentToken = Annotated[str | None, Header(alias="X-Consent-Token", description="Your consent link's secret.")]


def participant(node: NodeDep, token: ConsentToken = None) -> Participant:
    """The participant whose consent token the caller sent (``genoshare.access.consent_tokens`` decides)."""
    return node.consent_tokens.participant(token)


ParticipantDep = Annotated[Participant, Depends(participant)]


@router.get("/consent", summary="Your consent record (participants)")
def my_consent(consent: ConsentDep, person: ParticipantDep) -> dict[str, Any]:
    return consent.record(person).as_dict()


@router.post("/consent/narrow", summary="Narrow your consent, e.g. no commercial use (participants)")
def narrow(consent: ConsentDep, person: ParticipantDep, body: Annotated[NarrowBody, Body()]) -> dict[str, Any]:
    return consent.narrow(person, body.codes, f"participant:{person.pseudonym}").as_dict()


@router.post("/consent/widen", summary="Lift a narrowing you made earlier, e.g. NCU (participants)")
def widen(consent: ConsentDep, person: ParticipantDep, body: Annotated[NarrowBody, Body()]) -> dict[str, Any]:
    return consent.widen(person, body.codes, f"participant:{person.pseudonym}").as_dict()


@router.post("/consent/matchmaking", summary="Allow or refuse rare-disease matchmaking (participants)")
def matchmaking(
    consent: ConsentDep, person: ParticipantDep, body: Annotated[MatchmakingBody, Body()]
) -> dict[str, Any]:
    return consent.set_matchmaking(person, body.allow, f"participant:{person.pseudonym}").as_dict()


@router.post("/consent/withdraw", summary="Withdraw your consent; takes effect at once (participants)")
def withdraw(consent: ConsentDep, person: ParticipantDep) -> dict[str, Any]:
    result = consent.withdraw(person, f"participant:{person.pseudonym}")
    return {**result.record.as_dict(), "unavailable": list(result.unavailable), "rederiving": list(result.rederiving)}


@router.get("/consent/usage", summary="Who used your data (participants)")
def my_usage(usage: UsageDep, person: ParticipantDep) -> list[dict[str, Any]]:
    return [use.as_dict() for use in usage.of(person.dataset_id, person.pseudonym)]
