"""htsget 1.3 routes under ``/htsget``; the protocol logic is ``genoshare.htsget.service``."""

from __future__ import annotations

import json
from typing import Any, Literal

from fastapi import Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from genoshare.access.passports import Identity
from genoshare.api.deps import HtsgetDep, IdentityDep
from genoshare.api.routing import PrefixRouter
from genoshare.htsget.errors import InvalidInput, PayloadTooLarge
from genoshare.htsget.service import (
    C4GH,
    ENDPOINT_FORMATS,
    MAX_REGIONS,
    PUBLIC_KEY_HEADER,
    READ_FIELDS,
    READS,
    VARIANTS,
    HtsgetQuery,
    HtsgetService,
    parse_get,
    parse_post,
)

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
router = PrefixRouter(prefix="/htsget", tags=["htsget"], responses=ERRORS)


class ObjectId(Convertor[str]):
    """An htsget id: any path (ids may hold '/') but ``service-info``, the endpoint's own GET-only resource.

    With ``{id:path}``, POST /htsget/reads/service-info asked for a ticket for an object "service-info", and a
    405 for any other method there listed POST as allowed, which the OpenAPI document does not say.
    """

    regex = "(?!service-info$).+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("htsget_id", ObjectId())


class TicketJSON(JSONResponse):
    media_type = MEDIA_TYPE


class HtsgetUrl(BaseModel):
    url: str = Field(description="A URL on this node's /data, or a data: URI holding the bytes inline")
    headers: dict[str, str] | SkipJsonSchema[None] = Field(
        None, description="Send these with the request: the ticket (Authorization) and the byte Range"
    )
    class_: Literal["header", "body"] | SkipJsonSchema[None] = Field(None, alias="class")


class HtsgetTicketBody(BaseModel):
    format: Literal["BAM", "CRAM", "VCF", "BCF"]
    urls: list[HtsgetUrl] = Field(description="Concatenated in order, the bytes make the file or its slice")
    md5: str | SkipJsonSchema[None] = Field(None, description="MD5 of the whole file, when the whole file is asked")


class HtsgetTicket(BaseModel):
    """The htsget 1.3 ticket; routes answer with ``TicketJSON`` directly, so this documents, never validates."""

    htsget: HtsgetTicketBody


_UINT32 = {"type": "integer", "minimum": 0, "maximum": 2**32 - 1}
_CLASS = {"type": "string", "enum": ["header"], "description": "header: only the header; absent: header and body"}
_SCHEME = {"type": "string", "enum": [C4GH], "description": f"Crypt4GH for the key sent in {PUBLIC_KEY_HEADER}"}
_KEY_HEADER = {
    "name": PUBLIC_KEY_HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "Your Crypt4GH public key, base64; needed with encryptionScheme=C4GH",
}
_CROSS_RULES = (
    "start and end need a referenceName other than '*'; start <= end (start < end in POST regions); "
    "class=header takes no other parameter than format; tags and notags do not intersect. "
    "A request that breaks these is answered 400 InvalidInput or InvalidRange."
)


def _format_schema(endpoint: str) -> dict[str, Any]:
    formats = [fmt.value for fmt in ENDPOINT_FORMATS[endpoint]]
    return {"type": "string", "enum": formats, "description": f"Default {formats[0]}"}


def _fields_pattern(endpoint: str) -> str:
    """Reads fields are the spec's BAM field names; a variants server may take any name."""
    name = f"(?:{'|'.join(sorted(READ_FIELDS))})" if endpoint == READS else "[^,]+"
    return f"^{name}(?:,{name})*$"


def _get_declaration(endpoint: str) -> dict[str, Any]:
    """The htsget GET query parameters (the route reads them raw, so FastAPI cannot see them)."""

    def query(name: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
        parameter = {"name": name, "in": "query", "required": False, "schema": schema}
        if description or "description" in schema:
            parameter["description"] = description or schema["description"]
        return parameter

    names = {"type": "string", "pattern": "^[^,]+(?:,[^,]+)*$"}
    return {
        "description": _CROSS_RULES,
        "parameters": [
            query("format", _format_schema(endpoint)),
            query("class", _CLASS),
            query("referenceName", {"type": "string", "minLength": 1}, "Contig; '*' is the unplaced unmapped reads"),
            query("start", _UINT32, "0-based start; needs referenceName"),
            query("end", _UINT32, "0-based exclusive end; needs referenceName"),
            query("fields", {"type": "string", "pattern": _fields_pattern(endpoint)}, "Comma-separated fields"),
            query("tags", names, "Comma-separated tags to include"),
            query("notags", names, "Comma-separated tags to leave out"),
            query("encryptionScheme", _SCHEME),
            _KEY_HEADER,
        ],
    }


def _post_declaration(endpoint: str) -> dict[str, Any]:
    """The htsget POST body (read raw, so that an oversized body is refused before it is parsed)."""
    names = {"type": "array", "items": {"type": "string", "minLength": 1}}
    region = {
        "type": "object",
        "additionalProperties": False,
        "required": ["referenceName"],
        "properties": {"referenceName": {"type": "string", "minLength": 1}, "start": _UINT32, "end": _UINT32},
    }
    fields_item = {"type": "string", "enum": sorted(READ_FIELDS)} if endpoint == READS else names["items"]
    body = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "format": _format_schema(endpoint),
            "class": _CLASS,
            "fields": {"type": "array", "items": fields_item},
            "tags": names,
            "notags": names,
            "regions": {"type": "array", "minItems": 1, "maxItems": MAX_REGIONS, "items": region},
            "encryptionScheme": _SCHEME,
        },
    }
    return {
        "description": f"{_CROSS_RULES} Bodies over {MAX_BODY} bytes are answered 413.",
        "parameters": [
            {"name": "encryptionScheme", "in": "query", "required": False, "schema": _SCHEME},
            _KEY_HEADER,
        ],
        "requestBody": {"required": False, "content": {"application/json": {"schema": body}}},
    }


def _ticket(body: dict[str, Any]) -> JSONResponse:
    return TicketJSON(body)


@router.get("/reads/service-info", summary="htsget reads service-info")
def reads_service_info(service: HtsgetDep) -> dict[str, Any]:
    return service.service_info(READS)


@router.get("/variants/service-info", summary="htsget variants service-info")
def variants_service_info(service: HtsgetDep) -> dict[str, Any]:
    return service.service_info(VARIANTS)


@router.get(
    "/reads/{id:htsget_id}",
    response_model=HtsgetTicket,
    response_class=TicketJSON,
    openapi_extra=_get_declaration(READS),
    summary="Ticket for reads (BAM, CRAM)",
)
def get_reads(id: str, request: Request, service: HtsgetDep, identity: IdentityDep) -> JSONResponse:
    query = parse_get(READS, id, request.query_params, request.headers.get(PUBLIC_KEY_HEADER))
    return _ticket(service.ticket(query, identity))


@router.get(
    "/variants/{id:htsget_id}",
    response_model=HtsgetTicket,
    response_class=TicketJSON,
    openapi_extra=_get_declaration(VARIANTS),
    summary="Ticket for variants (VCF, BCF)",
)
def get_variants(id: str, request: Request, service: HtsgetDep, identity: IdentityDep) -> JSONResponse:
    query = parse_get(VARIANTS, id, request.query_params, request.headers.get(PUBLIC_KEY_HEADER))
    return _ticket(service.ticket(query, identity))


async def _body(request: Request) -> Any:
    raw = bytearray()
    async for piece in request.stream():
        raw += piece
        if len(raw) > MAX_BODY:
            raise PayloadTooLarge(f"POST body over {MAX_BODY} bytes")
    try:
        return json.loads(raw or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError) as error:  # RecursionError: arrays nested too deep
        raise InvalidInput(f"the POST body is not JSON: {error}") from error


@router.post(
    "/reads/{id:htsget_id}",
    response_model=HtsgetTicket,
    response_class=TicketJSON,
    openapi_extra=_post_declaration(READS),
    summary="Ticket for reads, several regions in a JSON body",
)
async def post_reads(id: str, request: Request, service: HtsgetDep, identity: IdentityDep) -> JSONResponse:
    query = parse_post(READS, id, await _body(request), request.query_params, request.headers.get(PUBLIC_KEY_HEADER))
    return _ticket(await _in_thread(service, query, identity))


@router.post(
    "/variants/{id:htsget_id}",
    response_model=HtsgetTicket,
    response_class=TicketJSON,
    openapi_extra=_post_declaration(VARIANTS),
    summary="Ticket for variants, several regions in a JSON body",
)
async def post_variants(id: str, request: Request, service: HtsgetDep, identity: IdentityDep) -> JSONResponse:
    body = await _body(request)
    query = parse_post(VARIANTS, id, body, request.query_params, request.headers.get(PUBLIC_KEY_HEADER))
    return _ticket(await _in_thread(service, query, identity))


async def _in_thread(service: HtsgetService, query: HtsgetQuery, identity: Identity | None) -> dict[str, Any]:
    """Ticket work touches the database and files: keep it off the event loop (GET routes are sync for that)."""
    return await run_in_threadpool(service.ticket, query, identity)
