"""What the Beacon routes declare in the node's OpenAPI: query parameters, request body, error responses.

Written from the spec's ``beaconRequestBody`` (framework/json/requests) and the default model's
g_variant request parameters, inlined into one self-contained schema (OpenAPI documents cannot follow the
spec's relative ``$ref`` files) and narrowed to what this node understands: filters are CURIEs, ontology
or custom terms, or the ``sex`` and ``age`` alphanumeric fields. Everything these schemas accept gets an
answer (``beacon.variants`` explains how partial variant parameters combine), so a generic client or a
fuzzer can trust them; anything else is a 400 with the Beacon error body.
"""

from __future__ import annotations

from typing import Any

from genoshare.beacon.filters import OPERATORS, SEX_OPERATORS
from genoshare.beacon.request import GRANULARITIES, INCLUDE

Schema = dict[str, Any]

_COORDINATES: Schema = {
    "type": "array",
    "items": {"type": "integer", "minimum": 0},
    "minItems": 1,
    "maxItems": 2,
}
_BASES: Schema = {"type": "string", "pattern": "^[ACGTUNRYSWKMBDHVacgtunryswkmbdhv.-]*$"}
_NUMBER = "[0-9]+(?:[.][0-9]+)?"
#: Years as a plain number, or an ISO 8601 duration with at least one of Y, M, W, D in that order.
_AGE = (
    f"^(?:{_NUMBER}|P(?:{_NUMBER}Y(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    f"|{_NUMBER}M(?:{_NUMBER}W)?(?:{_NUMBER}D)?|{_NUMBER}W(?:{_NUMBER}D)?|{_NUMBER}D))$"
)

#: g_variant request parameters (default model), by name.
VARIANT_PARAMETERS: dict[str, Schema] = {
    "referenceName": {"type": "string", "minLength": 1, "description": "Contig, e.g. 20 or chr20; absent: any."},
    "start": {**_COORDINATES, "description": "0-based start; two values bound it (bracket query)."},
    "end": {**_COORDINATES, "description": "End (exclusive); two values bound it (bracket query)."},
    "referenceBases": {**_BASES, "description": "Reference bases; N matches any one base."},
    "alternateBases": {**_BASES, "description": "Alternate bases; N matches any one base."},
    "variantType": {"type": "string", "minLength": 1, "description": "SNP, DEL, INS, INDEL, DUP, ... or EFO id."},
    "variantMinLength": {"type": "integer", "minimum": 0},
    "variantMaxLength": {"type": "integer", "minimum": 0},
    "geneId": {"type": "string", "minLength": 1, "description": "Gene symbol from the node's gene table."},
    "assemblyId": {"type": "string", "minLength": 1, "description": "e.g. GRCh38; other assemblies are a 404."},
}

_CONTROLS: dict[str, Schema] = {
    "skip": {"type": "integer", "minimum": 0, "default": 0},
    "limit": {"type": "integer", "minimum": 0, "default": 10, "description": "0: as many as the node allows."},
    "requestedGranularity": {"type": "string", "enum": list(GRANULARITIES)},
    "includeResultsetResponses": {"type": "string", "enum": list(INCLUDE), "default": "HIT"},
    "testMode": {"type": "boolean", "default": False},
}

_CURIE: Schema = {"type": "string", "minLength": 1, "pattern": "^[^,]+$"}
_FILTER: Schema = {
    "anyOf": [
        _CURIE,
        {
            "title": "OntologyFilter",
            "type": "object",
            "required": ["id"],
            "additionalProperties": False,
            "properties": {
                "id": {"type": "string", "minLength": 1},
                "includeDescendantTerms": {"type": "boolean", "default": True},
                "similarity": {"type": "string", "enum": ["exact", "high", "medium", "low"]},
                "scope": {"type": "string"},
            },
        },
        {
            "title": "AlphanumericFilter (sex)",
            "type": "object",
            "required": ["id", "operator", "value"],
            "additionalProperties": False,
            "properties": {
                "id": {"const": "sex"},
                "operator": {"type": "string", "enum": list(SEX_OPERATORS)},
                "value": {"type": "string", "description": "female, male, unknown or an NCIT sex term"},
                "scope": {"type": "string"},
            },
        },
        {
            "title": "AlphanumericFilter (age)",
            "type": "object",
            "required": ["id", "operator", "value"],
            "additionalProperties": False,
            "properties": {
                "id": {"const": "age"},
                "operator": {"type": "string", "enum": list(OPERATORS)},
                "value": {"type": "string", "pattern": _AGE},
                "scope": {"type": "string"},
            },
        },
    ]
}


def query_parameters() -> list[Schema]:
    """GET parameters of an entry route; lists are comma-separated (``start=100,200``)."""
    filters: Schema = {"type": "array", "items": _CURIE, "description": "CURIEs, ANDed"}
    declared = {**_CONTROLS, "filters": filters, **VARIANT_PARAMETERS}
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "schema": schema,
            **({"style": "form", "explode": False} if schema.get("type") == "array" else {}),
        }
        for name, schema in declared.items()
    ]


def paging_parameters() -> list[Schema]:
    return [{"name": n, "in": "query", "required": False, "schema": _CONTROLS[n]} for n in ("skip", "limit")]


def request_body() -> Schema:
    """``beaconRequestBody``: only ``meta.apiVersion`` is required, as in the spec."""
    query: Schema = {
        "type": "object",
        "properties": {
            "requestParameters": {
                "type": "object",
                "additionalProperties": False,
                "properties": {"$schema": {"type": "string"}, **VARIANT_PARAMETERS},
            },
            "filters": {"type": "array", "items": _FILTER},
            "pagination": {
                "type": "object",
                "properties": {"skip": _CONTROLS["skip"], "limit": _CONTROLS["limit"]},
            },
            **{name: _CONTROLS[name] for name in ("requestedGranularity", "includeResultsetResponses", "testMode")},
        },
    }
    schema: Schema = {
        "title": "beaconRequestBody",
        "type": "object",
        "required": ["meta"],
        "properties": {
            "$schema": {"type": "string"},
            "meta": {
                "type": "object",
                "required": ["apiVersion"],
                "properties": {
                    "apiVersion": {"type": "string", "examples": ["v2.0.0"]},
                    "requestedSchemas": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"entityType": {"type": "string"}, "schema": {"type": "string"}},
                        },
                    },
                },
            },
            "query": query,
        },
    }
    return {"required": True, "content": {"application/json": {"schema": schema}}}


_ERROR: Schema = {
    "title": "beaconErrorResponse",
    "type": "object",
    "required": ["meta", "error"],
    "properties": {
        "meta": {"type": "object"},
        "error": {
            "type": "object",
            "required": ["errorCode"],
            "properties": {"errorCode": {"type": "integer"}, "errorMessage": {"type": "string"}},
        },
    },
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": description, "content": {"application/json": {"schema": _ERROR}}}
    for status, description in (
        (400, "The request is not what this OpenAPI declares"),
        (401, "The bearer token could not be verified"),
        (403, "The credentials do not allow this"),
        (404, "A referenced assembly, gene or entry id is not known here"),
        (429, "Query limit of the dataset's privacy policy reached; see Retry-After"),
    )
}
