"""The node's OpenAPI document, corrected where FastAPI's defaults differ from what the node does.

FastAPI documents request-validation failures as 422 with its own body; genoshare answers them with 400
and the GA4GH error body of the API family (``genoshare.api.errors``), so the document says that instead.
Each family's error body is one shared component that every 4xx/5xx refers to: inlined, a client generator
made one model per operation and status (and ``openapi-python-client`` gave up on hundreds of them).

Who may send what is declared as ``securitySchemes``, so Swagger UI (``/docs``) offers to take a passport
and generated clients know where it goes: ``passport`` on every route that reads one (optional outside
``/governance``: without it the caller is anonymous), ``ticket`` on ``/data`` (the short-lived token handed
out with each DRS or htsget URL). Routes that read the bearer header by hand say so with
``openapi_extra=PASSPORT``/``TICKET``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from genoshare.beacon.openapi import ERROR_SCHEMA as BEACON_ERROR_SCHEMA
from genoshare.clinical.mme import MEDIA_TYPE as MME_MEDIA_TYPE

_SCHEMAS = "#/components/schemas/"
#: Error body of each API family, by path prefix (first match wins), as ``genoshare.api.errors`` writes it.
_ERROR_COMPONENTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (
        "/htsget",
        "HtsgetError",
        {
            "title": "HtsgetError",
            "type": "object",
            "required": ["htsget"],
            "properties": {
                "htsget": {
                    "type": "object",
                    "required": ["error", "message"],
                    "properties": {
                        "error": {"type": "string", "description": "InvalidInput, NotFound, PermissionDenied, ..."},
                        "message": {"type": "string"},
                    },
                }
            },
        },
    ),
    ("/api", "BeaconErrorResponse", BEACON_ERROR_SCHEMA),
    ("/network/api", "BeaconErrorResponse", BEACON_ERROR_SCHEMA),
    (
        "/services",
        "ServiceRegistryError",
        {
            "title": "ServiceRegistryError",
            "description": "The GA4GH Service Registry error body.",
            "type": "object",
            "required": ["status", "title"],
            "properties": {"status": {"type": "integer"}, "title": {"type": "string"}, "detail": {"type": "string"}},
        },
    ),
    (
        "/mme/",
        "MatchmakerError",
        {
            "title": "MatchmakerError",
            "description": "The Matchmaker Exchange error body: a human-readable message (search-api.md).",
            "type": "object",
            "required": ["message"],
            "properties": {
                "message": {"type": "string"},
                "supportedVersions": {"type": "array", "items": {"type": "string"}},
            },
        },
    ),
    (
        "",
        "Error",
        {
            "title": "Error",
            "description": "The GA4GH error body of DRS and service-info: a message and the HTTP status.",
            "type": "object",
            "required": ["msg", "status_code"],
            "properties": {"msg": {"type": "string"}, "status_code": {"type": "integer"}},
        },
    ),
)
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "passport": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A GA4GH Passport signed by a trusted broker or by this node, or the access token of a "
        "broker the node trusts (the node then fetches your visas). Optional where public data is served: "
        "without one the caller is anonymous.",
    },
    "ticket": {
        "type": "http",
        "scheme": "bearer",
        "description": "The short-lived ticket a DRS access URL or an htsget URL came with (its `headers`).",
    },
}
#: Where a passport is optional: ``IdentityDep`` routes (``PassportBearer`` declares them) and those that read
#: the bearer header by hand (``openapi_extra``).
PASSPORT: dict[str, Any] = {"security": [{}, {"passport": []}]}
#: Paths whose routes answer 401 without a passport (the caller must be someone).
_PASSPORT_REQUIRED = ("/governance", "/network/governance")
#: ``openapi_extra`` of routes that need a ticket.
TICKET: dict[str, Any] = {"security": [{"ticket": []}]}


def error_component(path: str) -> tuple[str, dict[str, Any]]:
    """Name and schema of the error body answered under ``path``."""
    for prefix, name, schema in _ERROR_COMPONENTS:
        if path.startswith(prefix):
            return name, schema
    raise AssertionError("the empty prefix matches every path")


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        components = document.setdefault("components", {})
        schemas = components.setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        components["securitySchemes"] = SECURITY_SCHEMES
        for path, operations in document.get("paths", {}).items():
            name, schema = error_component(path)
            for operation in operations.values():
                if operation.get("security") == [{"passport": []}] and not path.startswith(_PASSPORT_REQUIRED):
                    operation["security"] = [dict(requirement) for requirement in PASSPORT["security"]]
                responses = operation.get("responses", {})
                if "422" in responses and name != "MatchmakerError":  # MME answers 422 itself (search-api.md)
                    del responses["422"]
                    responses.setdefault("400", {"description": "The request is malformed."})
                for status, response in responses.items():
                    if status[0] in "45":
                        media = MME_MEDIA_TYPE if name == "MatchmakerError" else "application/json"
                        response["content"] = {media: {"schema": {"$ref": _SCHEMAS + name}}}
                        schemas[name] = schema
        app.openapi_schema = document
        return document

    app.openapi = build  # type: ignore[method-assign]
