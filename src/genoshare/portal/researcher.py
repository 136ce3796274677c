"""Researchers' pages: the catalogue, discovery, access requests, and downloads of what was approved.

Every answer here comes from the services the APIs use: counts and search results from the Beacon service
(at the granularity ``genoshare.access`` gives this visitor, with the datasets it did not consult and why),
DUO matching and requests from the request workflow, files from the dataset service. The pages decide
nothing about access themselves; they show what the services decided.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile

from genoshare.access.granularity import AccessLevel
from genoshare.access.passports import Identity
from genoshare.beacon.framework import BY_PATH
from genoshare.beacon.request import parse_query
from genoshare.duo.purpose import PurposeCategory, ResearchPurpose
from genoshare.errors import GenoshareError, InvalidInput, NotFound
from genoshare.governance.documents import MAX_DOCUMENTS
from genoshare.governance.requests import SECTORS, NewRequest, agreement_digest
from genoshare.portal.i18n import N_
from genoshare.portal.web import (
    PREFIX,
    RESEARCHER,
    NavItem,
    Portal,
    Viewer,
    ViewerDep,
    flash,
    portal_of,
    portal_router,
    redirect,
    render,
    require_role,
    t,
)
from genoshare.store.models import AccessRequest, DataObject, Dataset

router = portal_router()
NAV = [
    NavItem(f"{PREFIX}/datasets", N_("Datasets")),
    NavItem(f"{PREFIX}/discover", N_("Discover")),
    NavItem(f"{PREFIX}/requests", N_("My requests"), frozenset({RESEARCHER})),
    NavItem(f"{PREFIX}/downloads", N_("My data"), frozenset({RESEARCHER})),
]
ResearcherDep = Annotated[Viewer, Depends(require_role(RESEARCHER))]

#: Plain words for each access level, and for what a visitor sees of it.
LEVELS = {
    AccessLevel.PUBLIC: N_("Open: anyone may see and download the data."),
    AccessLevel.REGISTERED: N_("Registered: researchers with a recognised research status may use the data."),
    AccessLevel.CONTROLLED: N_("Controlled: the data access committee decides who may use the data, and for what."),
}
#: The purposes a request can name (DUO's primary categories), in plain words.
PURPOSES = (
    (PurposeCategory.GRU, N_("General research, of any kind")),
    (PurposeCategory.HMB, N_("Health, medical or biomedical research")),
    (PurposeCategory.DS, N_("Research on a specific disease")),
    (PurposeCategory.POA, N_("Research on population origins or ancestry")),
    (PurposeCategory.NRES, N_("A use other than research")),
)
#: The statements a requester can make about the use (``ResearchPurpose`` booleans), in plain words.
STATEMENTS = (
    ("for_profit", N_("My organisation is a for-profit company.")),
    ("commercial", N_("The use is commercial (products, services or profit).")),
    ("methods_development", N_("The project develops research methods or software.")),
    ("population_ancestry", N_("The project studies population origins or ancestry.")),
    ("genetic_study", N_("It is a genetic study.")),
    ("clinical_care", N_("Results may be used in the clinical care of patients.")),
    ("irb_approval", N_("The project has ethics committee approval (attach it below).")),
    ("collaboration_agreed", N_("We agree to collaborate with the team that collected the data.")),
    ("publication_planned", N_("We will publish or share our results.")),
    ("return_of_results", N_("We will return derived or enriched data to the resource.")),
)
SECTOR_NAMES = {
    "academic": N_("University or research institute"),
    "public": N_("Government or public body"),
    "non-profit": N_("Non-profit organisation"),
    "clinical": N_("Hospital or clinic"),
    "commercial": N_("Company"),
}
OUTCOMES = {
    "PERMIT": N_("Allowed by the consent"),
    "DENY": N_("Not allowed by the consent"),
    "REVIEW": N_("Needs the committee's judgement"),
}


# -- the catalogue ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One dataset's Beacon answer as a page shows it."""

    consulted: bool
    granularity: str = ""
    exists: bool | None = None
    count: int | None = None
    why: str = ""
    more: str = ""


def beacon_answers(portal: Portal, entry: str, query: dict[str, Any], identity: Identity | None) -> dict[str, Answer]:
    """Per dataset: the Beacon service's answer to ``query`` for this visitor (who may be anonymous)."""
    request = parse_query({"includeResultsetResponses": "ALL", "limit": "1", **query})
    document = portal.services.beacon.query(BY_PATH[entry], request, identity)
    counts = {result["id"]: result.get("resultsCount") for result in document.get("response", {}).get("resultSets", [])}
    answers = {}
    for info in document.get("info", {}).get("datasets", []):
        granularity = str(info.get("returnedGranularity", ""))
        answers[info["id"]] = Answer(
            consulted=bool(info.get("consulted")),
            granularity=granularity,
            exists=info.get("exists"),
            count=counts.get(info["id"]) if granularity in ("count", "record") else None,
            why=str(info.get("reason", "")),
            more=str(info.get("toGetMore", "")),
        )
    return answers


@router.get("/datasets")
def catalogue(request: Request, viewer: ViewerDep) -> HTMLResponse:
    portal = portal_of(request)
    datasets = portal.services.datasets.list()
    problem = ""
    try:
        answers = beacon_answers(portal, "individuals", {"requestedGranularity": "count"}, viewer.identity)
    except GenoshareError as error:
        answers, problem = {}, error.message
    return render(
        request,
        "researcher/catalogue.html",
        datasets=datasets,
        answers=answers,
        problem=problem,
        levels=LEVELS,
        agreement_digest=agreement_digest,
    )


# -- discovery ----------------------------------------------------------------------------------------


def filtering_terms(portal: Portal) -> list[dict[str, str]]:
    """The node's filtering terms (HPO, MONDO, ...) present in its data: the discovery form's suggestions."""
    document = portal.services.beacon.filtering_terms(0, 1000)
    return [
        {"id": str(term["id"]), "label": str(term.get("label", ""))}
        for term in document.get("response", {}).get("filteringTerms", [])
    ]


@router.get("/discover")
def discover(
    request: Request,
    viewer: ViewerDep,
    chromosome: Annotated[str, Query(max_length=40)] = "",
    position: Annotated[str, Query(max_length=20)] = "",
    reference: Annotated[str, Query(max_length=200)] = "",
    alternate: Annotated[str, Query(max_length=200)] = "",
    gene: Annotated[str, Query(max_length=60)] = "",
    terms: Annotated[str, Query(max_length=1000)] = "",
) -> HTMLResponse:
    """A search form (GET: a search is safe and can be bookmarked); results at the visitor's granularity."""
    portal = portal_of(request)
    form = {"chromosome": chromosome, "position": position, "reference": reference, "alternate": alternate}
    form.update(gene=gene, terms=terms)
    answers: dict[str, Answer] | None = None
    problem = ""
    asked = ""
    try:
        query, entry, asked = _discovery_query(request, form)
        if query:
            answers = beacon_answers(portal, entry, query, viewer.identity)
    except GenoshareError as error:
        problem = error.message
    titles = {dataset.id: dataset.title for dataset in portal.services.datasets.list()}
    return render(
        request,
        "researcher/discover.html",
        status_code=400 if problem else 200,
        form=form,
        answers=answers,
        asked=asked,
        problem=problem,
        titles=titles,
        terms=filtering_terms(portal),
    )


def _discovery_query(request: Request, form: dict[str, str]) -> tuple[dict[str, str], str, str]:
    """The Beacon query the form asks, its entry type, and the question in words; ``({}, ...)`` if empty."""
    query: dict[str, str] = {"requestedGranularity": "record"}
    words: list[str] = []
    chromosome, position = form["chromosome"].strip(), form["position"].strip()
    if chromosome or position or form["reference"].strip() or form["alternate"].strip():
        if not chromosome or not position.isdigit() or int(position) < 1:
            raise InvalidInput(t(request, "Give the chromosome and a position (a whole number from 1) of the variant."))
        reference = form["reference"].strip().upper() or "N"
        alternate = form["alternate"].strip().upper() or "N"
        # The form speaks VCF (1-based positions); Beacon v2 counts from 0.
        query.update(referenceName=chromosome, start=str(int(position) - 1))
        query.update(referenceBases=reference, alternateBases=alternate)
        words.append(f"{chromosome}:{position} {reference}>{alternate}")
    gene = form["gene"].strip()
    if gene:
        query["geneId"] = gene
        words.append(gene)
    terms = [term.strip() for term in form["terms"].split(",") if term.strip()]
    if terms:
        query["filters"] = ",".join(terms)
        words.extend(terms)
    if not words:
        return {}, "individuals", ""
    entry = "g_variants" if "referenceName" in query or gene else "individuals"
    return query, entry, ", ".join(words)


# -- access requests ----------------------------------------------------------------------------------


def requestable(portal: Portal) -> list[Dataset]:
    return [dataset for dataset in portal.services.datasets.list() if dataset.access_level == AccessLevel.CONTROLLED]


def _purpose(request: Request, form: FormData) -> ResearchPurpose:
    diseases = tuple(d.strip().upper() for d in str(form.get("diseases", "")).replace(";", ",").split(",") if d.strip())
    values: dict[str, Any] = {name: form.get(name) == "yes" for name, _ in STATEMENTS}
    location = str(form.get("location", "")).strip()
    try:
        return ResearchPurpose(
            primary=PurposeCategory(str(form.get("primary", ""))),
            diseases=diseases,
            location=location or None,
            **values,
        )
    except (ValidationError, ValueError):
        raise InvalidInput(
            t(request, "Choose the purpose; for research on a disease, name it by its MONDO id (e.g. MONDO:0005148).")
        ) from None


def _request_page(request: Request, form: FormData | None, status: int = 200, **context: Any) -> HTMLResponse:
    portal = portal_of(request)
    chosen = set(form.getlist("datasets")) if form is not None else set(request.query_params.getlist("dataset"))
    values = {key: str(value) for key, value in form.items() if isinstance(value, str)} if form is not None else {}
    terms = [term for term in filtering_terms(portal) if term["id"].startswith("MONDO:")]
    return render(
        request,
        "researcher/request_form.html",
        status_code=status,
        datasets=requestable(portal),
        chosen=chosen,
        values=values,
        purposes=PURPOSES,
        statements=STATEMENTS,
        sectors=[(sector, SECTOR_NAMES[sector]) for sector in SECTORS],
        outcomes=OUTCOMES,
        agreement_digest=agreement_digest,
        mondo_terms=terms,
        upload_limit=f"{portal.settings.max_body_bytes / (1024 * 1024):.0f}",
        **context,
    )


@router.get("/requests/new")
def request_form(request: Request, viewer: ResearcherDep) -> HTMLResponse:
    return _request_page(request, None)


@router.post("/requests/check")
async def check_request(request: Request, viewer: ResearcherDep) -> HTMLResponse:
    """The DUO match per dataset for the purpose as filled in so far, without submitting anything."""
    form = await request.form()
    return await run_in_threadpool(_check, request, viewer, form)


def _check(request: Request, viewer: Viewer, form: FormData) -> HTMLResponse:
    portal = portal_of(request)
    assert viewer.identity is not None
    try:
        datasets = form.getlist("datasets")
        if not datasets:
            raise InvalidInput(t(request, "Choose at least one dataset."))
        purpose = _purpose(request, form)
        preview = portal.services.access_requests.preview(viewer.identity, [str(d) for d in datasets], purpose)
    except GenoshareError as error:
        return _request_page(request, form, 400, problem=error.message)
    return _request_page(request, form, preview=preview)


@router.post("/requests")
async def submit_request(request: Request, viewer: ResearcherDep) -> Response:
    form = await request.form()
    uploads = [item for item in form.getlist("documents") if isinstance(item, UploadFile) and item.filename]
    files = [(upload.filename or "document", await upload.read()) for upload in uploads]
    return await run_in_threadpool(_submit, request, viewer, form, files)


def _submit(request: Request, viewer: Viewer, form: FormData, files: Sequence[tuple[str, bytes]]) -> Response:
    portal = portal_of(request)
    assert viewer.identity is not None
    services = portal.services
    try:
        chosen = [str(d) for d in form.getlist("datasets")]
        if not chosen:
            raise InvalidInput(t(request, "Choose at least one dataset."))
        new = NewRequest(
            datasets=chosen,
            purpose=_purpose(request, form),
            project_title=str(form.get("project_title", "")),
            institution=str(form.get("institution", "")),
            country=str(form.get("country", "")),
            sector=str(form.get("sector", "")),
            contact_email=str(form.get("contact_email", "")),
            accepted_agreements={d: str(form[f"agreement-{d}"]) for d in chosen if form.get(f"agreement-{d}")},
        )
        # Every document is checked before the request is made: a refused one must not leave it without them.
        if len(files) > MAX_DOCUMENTS:
            raise InvalidInput(f"a request holds at most {MAX_DOCUMENTS} documents")
        for name, content in files:
            services.documents.check(name, content)
        made = services.access_requests.submit(viewer.identity, new)
    except GenoshareError as error:
        return _request_page(request, form, 400, problem=error.message)
    for name, content in files:
        services.documents.attach(viewer.identity, made.id, name, content)
    flash(request, t(request, "Your request was sent. Its state is shown below."), "success")
    return redirect(f"{PREFIX}/requests/{made.id}")


@router.get("/requests")
def my_requests(request: Request, viewer: ResearcherDep) -> HTMLResponse:
    portal = portal_of(request)
    assert viewer.identity is not None
    mine = [r for r in portal.services.access_requests.visible_to(viewer.identity) if r.requester == viewer.actor]
    return render(request, "researcher/requests.html", requests=list(reversed(mine)))


@router.get("/requests/{request_id}")
def request_detail(request: Request, request_id: str, viewer: ResearcherDep) -> HTMLResponse:
    portal = portal_of(request)
    assert viewer.identity is not None
    access_request: AccessRequest = portal.services.access_requests.get(request_id, viewer.identity)
    documents = portal.services.documents.list(viewer.identity, request_id)
    return render(
        request,
        "researcher/request.html",
        item=access_request,
        documents=documents,
        outcomes=OUTCOMES,
        purposes=dict(PURPOSES),
        statements=STATEMENTS,
    )


@router.get("/documents/{document_id}")
def document(request: Request, document_id: str, viewer: ResearcherDep) -> Response:
    """A request's document, for whoever may see the request (requester, its committees, stewards)."""
    assert viewer.identity is not None
    found, content = portal_of(request).services.documents.read(viewer.identity, document_id)
    return Response(
        content,
        media_type=found.media_type,
        headers={"Content-Disposition": f'attachment; filename="{found.name}"', "Cache-Control": "no-store"},
    )


# -- downloads ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GrantedDataset:
    dataset: Dataset
    expires_at: str
    files: list[DataObject]


def granted(portal: Portal, viewer: Viewer) -> list[GrantedDataset]:
    grants = portal.services.access_requests.active_grants(viewer.actor)
    found: dict[str, GrantedDataset] = {}
    for grant in grants:
        if grant.dataset_id in found:
            continue
        dataset = portal.services.datasets.get(grant.dataset_id)
        files = [row for row in portal.services.datasets.objects(grant.dataset_id) if row.status == "available"]
        found[grant.dataset_id] = GrantedDataset(dataset, grant.expires_at.date().isoformat(), files)
    return list(found.values())


def htsget_path(row: DataObject) -> str:
    kind = "reads" if row.format in ("BAM", "CRAM") else "variants"
    return f"/htsget/{kind}/{row.htsget_id}"


@router.get("/downloads")
def downloads(request: Request, viewer: ResearcherDep) -> HTMLResponse:
    portal = portal_of(request)
    return render(
        request,
        "researcher/downloads.html",
        granted=granted(portal, viewer),
        url=portal.settings.public_url,
        host=portal.settings.public_host,
        htsget_path=htsget_path,
    )


@router.get("/downloads/passport.jwt")
def download_passport(request: Request, viewer: ResearcherDep) -> Response:
    """The node-signed passport with the researcher's grants, as a file: never shown in a page or a URL."""
    assert viewer.identity is not None
    document = portal_of(request).services.access_requests.passport(viewer.identity)
    return Response(
        document["passport"] + "\n",
        media_type="application/jwt",
        headers={"Content-Disposition": 'attachment; filename="genoshare-passport.jwt"', "Cache-Control": "no-store"},
    )


@router.get("/downloads/{dataset_id}/manifest.json")
def manifest_json(request: Request, dataset_id: str, viewer: ResearcherDep) -> Response:
    dataset, rows = _manifest(request, dataset_id, viewer)
    body = {
        "dataset": dataset.id,
        "title": dataset.title,
        "custodian": dataset.custodian,
        "licence": dataset.license,
        "citation": dataset.citation,
        "data_access_agreement_sha256": agreement_digest(dataset.data_access_agreement)
        if dataset.data_access_agreement
        else None,
        "files": rows,
    }
    return Response(
        json.dumps(body, indent=2) + "\n",
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{dataset.id}-manifest.json"'},
    )


@router.get("/downloads/{dataset_id}/manifest.tsv")
def manifest_tsv(request: Request, dataset_id: str, viewer: ResearcherDep) -> Response:
    dataset, rows = _manifest(request, dataset_id, viewer)
    out = io.StringIO()
    out.write(f"# {dataset.title} ({dataset.id}); licence: {dataset.license or '-'}; cite: {dataset.citation or '-'}\n")
    fields = ["drs_id", "drs_uri", "name", "format", "size", "md5", "sha256", "htsget_url"]
    writer = csv.DictWriter(out, fieldnames=fields, delimiter="\t", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/tab-separated-values",
        headers={"Content-Disposition": f'attachment; filename="{dataset.id}-manifest.tsv"'},
    )


def _manifest(request: Request, dataset_id: str, viewer: Viewer) -> tuple[Dataset, list[dict[str, Any]]]:
    portal = portal_of(request)
    for each in granted(portal, viewer):
        if each.dataset.id == dataset_id:
            url, host = portal.settings.public_url, portal.settings.public_host
            return each.dataset, [
                {
                    "drs_id": row.id,
                    "drs_uri": f"drs://{host}/{row.id}",
                    "name": row.name,
                    "format": row.format,
                    "size": row.size,
                    "md5": row.md5,
                    "sha256": row.sha256,
                    "htsget_url": f"{url}{htsget_path(row)}",
                }
                for row in each.files
            ]
    raise NotFound(t(request, "You hold no grant for dataset %(dataset)s.", dataset=dataset_id))
