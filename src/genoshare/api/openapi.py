"""The node's OpenAPI document, corrected where FastAPI's defaults differ from what the node does.

FastAPI documents request-validation failures as 422 with its own body; genoshare answers them with 400
and the GA4GH error body of the API family (``genoshare.api.errors``), so the document says that instead.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from genoshare.beacon.openapi import ERROR_SCHEMA as BEACON_ERROR_SCHEMA

_ERROR_SCHEMAS: dict[str, dict[str, Any]] = {
    "/htsget": {
        "type": "object",
        "required": ["htsget"],
        "properties": {
            "htsget": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            }
        },
    },
    "/api": BEACON_ERROR_SCHEMA,
    "": {
        "type": "object",
        "required": ["msg", "status_code"],
        "properties": {"msg": {"type": "string"}, "status_code": {"type": "integer"}},
    },
}


def error_schema(path: str) -> dict[str, Any]:
    for prefix, schema in _ERROR_SCHEMAS.items():
        if path.startswith(prefix):
            return schema
    raise AssertionError("the empty prefix matches every path")


def install_openapi(app: FastAPI) -> None:
    def build() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for path, operations in document.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.get("responses", {})
                if "422" in responses:
                    del responses["422"]
                    responses.setdefault("400", {"description": "The request is malformed."})
                for status, response in responses.items():
                    if status[0] in "45":
                        response["content"] = {"application/json": {"schema": error_schema(path)}}
        document.get("components", {}).get("schemas", {}).pop("HTTPValidationError", None)
        document.get("components", {}).get("schemas", {}).pop("ValidationError", None)
        app.openapi_schema = document
        return document

    app.openapi = build  # type: ignore[method-assign]
