"""Clinical pages: look a variant up (anyone), and search for patients like one's own (stewards).

Both call the services the APIs use, built once by the composition root: ``ClinicalLookup`` (``GET
/clinical/variants``) and the Matchmaker Exchange service and client (``POST /mme/match``, ``POST
/mme/peers/match``). The lookup answers at the granularity the visitor's passport allows, anonymous
visitors included, and says why a dataset gives no count; the match page ranks the node's own matches and
each peer's, and names every peer that gave no answer, and why.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Depends, Form, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from genoshare.clinical.lookup import ClinicalLookup
from genoshare.clinical.mme import MatchmakerClient, MatchmakerService, MatchRequest, PeerAnswer, parse_request
from genoshare.errors import GenoshareError
from genoshare.portal.i18n import N_
from genoshare.portal.researcher import filtering_terms
from genoshare.portal.web import (
    PREFIX,
    STEWARD,
    NavItem,
    Viewer,
    ViewerDep,
    portal_of,
    portal_router,
    render,
    require_role,
    t,
)

router = portal_router()
NAV: list[NavItem] = [
    NavItem(f"{PREFIX}/clinical/variants", N_("Variant lookup")),
    NavItem(f"{PREFIX}/steward/matchmaking", N_("Matchmaking"), frozenset({STEWARD})),
]
StewardDep = Annotated[Viewer, Depends(require_role(STEWARD))]
#: How many phenotype fields the match form offers (each with the node's terms as suggestions).
TERM_FIELDS = 6

#: The lookup's notes (``genoshare.clinical.lookup``), marked here so that the catalogue translates them.
NOTES = (
    N_("no loaded annotation source has this variant: its clinical significance is not known here"),
    N_("no dataset of this node has variant data on this assembly"),
    N_("no dataset was consulted for you: see each dataset's reason and what access would help"),
)
#: Why a peer gave no results, in words (``PeerAnswer.status``).
PEER_STATUS = {
    "answered": N_("answered"),
    "refused": N_("refused the request"),
    "failed": N_("failed"),
    "timed out": N_("gave no answer in time"),
    "unreachable": N_("could not be reached"),
}


# -- variant lookup ------------------------------------------------------------------------------------


@router.get("/clinical/variants")
async def variant_page(
    request: Request,
    viewer: ViewerDep,
    variant: Annotated[str, Query(max_length=1000)] = "",
    assembly: Annotated[str, Query(max_length=64)] = "GRCh38",
) -> HTMLResponse:
    """The form, and for a variant its gene, significance and the node's counts at the visitor's level."""
    lookup: ClinicalLookup = request.app.state.clinical
    answer: dict[str, Any] | None = None
    problem = ""
    variant = variant.strip()
    if variant:
        try:
            answer = await run_in_threadpool(lookup.lookup, variant, viewer.identity, assembly.strip() or "GRCh38")
        except GenoshareError as error:
            problem = error.message
    return render(
        request,
        "clinical/variant.html",
        status_code=400 if problem else 200,
        form={"variant": variant, "assembly": assembly},
        answer=answer,
        problem=problem,
        notes=[t(request, note) for note in answer["notes"]] if answer else [],
    )


# -- matchmaking -----------------------------------------------------------------------------------------


def _hpo_terms(request: Request) -> list[dict[str, str]]:
    return [term for term in filtering_terms(portal_of(request)) if term["id"].startswith("HP:")]


@router.get("/steward/matchmaking")
async def match_page(request: Request, viewer: StewardDep) -> HTMLResponse:
    return render(request, "clinical/match.html", **await _form_context(request, [], ""))


async def _form_context(request: Request, terms: list[str], genes: str) -> dict[str, Any]:
    filled = [*terms[:TERM_FIELDS], *[""] * (TERM_FIELDS - len(terms))]
    client: MatchmakerClient = request.app.state.mme_client
    return {
        "form": {"terms": filled, "genes": genes},
        "suggestions": await run_in_threadpool(_hpo_terms, request),
        "peers": [peer.name for peer in client.peers()],
    }


@router.post("/steward/matchmaking")
async def run_match(
    request: Request,
    viewer: StewardDep,
    term: Annotated[list[str], Form(max_length=TERM_FIELDS)] = [],  # noqa: B006 - FastAPI copies defaults
    genes: Annotated[str, Form(max_length=2000)] = "",
) -> HTMLResponse:
    """The node's own matches and each peer's, for a patient described by HPO terms and candidate genes."""
    terms = [value.strip() for value in term if value.strip()]
    context = await _form_context(request, terms, genes)
    try:
        patient = _patient(request, viewer, terms, [g.strip() for g in genes.replace(";", ",").split(",")])
    except GenoshareError as error:
        return render(request, "clinical/match.html", status_code=400, problem=error.message, **context)
    own, peers = await run_in_threadpool(_search, request, viewer, patient)
    return render(request, "clinical/match.html", own=own, answers=peers, peer_status=PEER_STATUS, **context)


def _patient(request: Request, viewer: Viewer, terms: list[str], genes: list[str]) -> MatchRequest:
    """An MME request for the patient on the form, with the node's contact (checked as a peer's would be)."""
    settings = portal_of(request).settings
    body = {
        "patient": {
            "id": f"portal-{uuid.uuid4().hex[:12]}",
            "contact": {
                "name": viewer.actor,
                "institution": settings.organization,
                "href": settings.mme.contact_href or settings.public_url,
            },
            "features": [{"id": term} for term in terms],
            "genomicFeatures": [{"gene": {"id": gene}} for gene in genes if gene],
        }
    }
    return parse_request(body)


def _search(request: Request, viewer: Viewer, patient: MatchRequest) -> tuple[dict[str, Any], list[PeerAnswer]]:
    service: MatchmakerService = request.app.state.mme
    client: MatchmakerClient = request.app.state.mme_client
    own = service.match(viewer.actor, patient)
    peers = client.search(patient, viewer.actor) if client.peers() else []
    return own, peers
