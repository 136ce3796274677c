"""htsget 1.3 routes under ``/htsget``; the protocol logic is ``genoshare.htsget.service``."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from genoshare.access.passports import Identity
from genoshare.api.deps import IdentityDep, NodeDep
from genoshare.htsget.errors import InvalidInput, PayloadTooLarge
from genoshare.htsget.service import (
    PUBLIC_KEY_HEADER,
    READS,
    VARIANTS,
    HtsgetQuery,
    HtsgetService,
    parse_get,
    parse_post,
)
from genoshare.node import Node

#: POST bodies above this are refused with PayloadTooLarge (1,000 regions fit comfortably).
MAX_BODY = 256 * 1024
MEDIA_TYPE = "application/vnd.ga4gh.htsget.v1.3.0+json; charset=utf-8"
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "InvalidInput, InvalidRange or UnsupportedFormat."},
    401: {"description": "InvalidAuthentication: the dataset needs a valid passport."},
    403: {"description": "PermissionDenied: the passport does not grant record access to the dataset."},
    404: {"description": "NotFound: no such id or reference."},
    413: {"description": "PayloadTooLarge: the POST body is too large."},
}
router = APIRouter(prefix="/htsget", tags=["htsget"], responses=ERRORS)


def _service(request: Request, node: Node) -> HtsgetService:
    """One service per application, so that parsed indexes stay cached across requests."""
    service: HtsgetService | None = getattr(request.app.state, "htsget", None)
    if service is None or service.node is not node:
        service = request.app.state.htsget = HtsgetService(node)
    return service


def _ticket(body: dict[str, Any]) -> JSONResponse:
    return JSONResponse(body, media_type=MEDIA_TYPE)


@router.get("/reads/service-info", summary="htsget reads service-info")
def reads_service_info(request: Request, node: NodeDep) -> dict[str, Any]:
    return _service(request, node).service_info(READS)


@router.get("/variants/service-info", summary="htsget variants service-info")
def variants_service_info(request: Request, node: NodeDep) -> dict[str, Any]:
    return _service(request, node).service_info(VARIANTS)


@router.get("/reads/{id:path}", summary="Ticket for reads (BAM, CRAM)")
def get_reads(id: str, request: Request, node: NodeDep, identity: IdentityDep) -> JSONResponse:
    query = parse_get(READS, id, request.query_params, request.headers.get(PUBLIC_KEY_HEADER))
    return _ticket(_service(request, node).ticket(query, identity))


@router.get("/variants/{id:path}", summary="Ticket for variants (VCF, BCF)")
def get_variants(id: str, request: Request, node: NodeDep, identity: IdentityDep) -> JSONResponse:
    query = parse_get(VARIANTS, id, request.query_params, request.headers.get(PUBLIC_KEY_HEADER))
    return _ticket(_service(request, node).ticket(query, identity))


async def _body(request: Request) -> Any:
    raw = bytearray()
    async for piece in request.stream():
        raw += piece
        if len(raw) > MAX_BODY:
            raise PayloadTooLarge(f"POST body over {MAX_BODY} bytes")
    try:
        return json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidInput(f"the POST body is not JSON: {error}") from error


@router.post("/reads/{id:path}", summary="Ticket for reads, several regions in a JSON body")
async def post_reads(id: str, request: Request, node: NodeDep, identity: IdentityDep) -> JSONResponse:
    query = parse_post(READS, id, await _body(request), request.query_params, request.headers.get(PUBLIC_KEY_HEADER))
    return _ticket(await _in_thread(_service(request, node), query, identity))


@router.post("/variants/{id:path}", summary="Ticket for variants, several regions in a JSON body")
async def post_variants(id: str, request: Request, node: NodeDep, identity: IdentityDep) -> JSONResponse:
    body = await _body(request)
    query = parse_post(VARIANTS, id, body, request.query_params, request.headers.get(PUBLIC_KEY_HEADER))
    return _ticket(await _in_thread(_service(request, node), query, identity))


async def _in_thread(service: HtsgetService, query: HtsgetQuery, identity: Identity | None) -> dict[str, Any]:
    """Ticket work touches the database and files: keep it off the event loop (GET routes are sync for that)."""
    return await run_in_threadpool(service.ticket, query, identity)
