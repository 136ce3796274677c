"""One place that turns genoshare errors into the error body each GA4GH standard defines.

The body's shape follows the API family of the request path, so an access denial raised deep in
``genoshare.access`` reaches a DRS client as ``{msg, status_code}``, an htsget client as
``{htsget: {error, message}}`` and a Beacon client as a Beacon error response.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from genoshare.audit.denials import ANONYMOUS, DenialLog
from genoshare.beacon.framework import error_body as beacon_error_body
from genoshare.errors import GenoshareError

log = logging.getLogger("genoshare.api")

_HTSGET_NAMES = {
    400: "InvalidInput",
    401: "InvalidAuthentication",
    403: "PermissionDenied",
    404: "NotFound",
    405: "InvalidInput",
    413: "InvalidInput",
    416: "InvalidRange",
    500: "InternalError",
}


def error_body(request: Request, status: int, code: str, message: str) -> dict[str, Any]:
    path = request.url.path
    if path.startswith("/htsget"):
        return {"htsget": {"error": code, "message": message}}
    if path.startswith("/mme/"):
        return {"message": message}  # the Matchmaker Exchange error body
    if path.startswith(("/api", "/network/api")):
        # The same body the Beacon routes give, for paths no route serves (a generic 404 or 405).
        return beacon_error_body(request.app.state.node.settings, status, message)
    if path.startswith("/services"):
        return {"status": status, "title": code, "detail": message}  # GA4GH Service Registry's Error
    return {"msg": message, "status_code": status}


def _location(loc: tuple[object, ...]) -> str:
    """``("body", "bulk_object_ids", 0)`` -> ``bulk_object_ids.0``; the body itself is "body"."""
    inner = [str(part) for part in loc[1:]] if loc and loc[0] == "body" else [str(part) for part in loc]
    return ".".join(inner) or "body"


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods some route serves ``path`` with, asked of the routes themselves.

    FastAPI keeps an included router as one route (it no longer copies its routes into ``app.routes``), so
    the routes' own matching is the one view that sees them all.
    """
    return [
        method
        for method in _METHODS
        if any(
            route.matches({"type": "http", "path": path, "method": method, "root_path": ""})[0] == Match.FULL
            for route in app.router.routes
        )
    ]


def _response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(request, status, code, message), status_code=status, headers=headers)


#: Statuses that refuse the caller (credentials, grants, ranges, rate limits); each is counted in the audit log.
_DENIALS = (401, 403, 416, 429)
_ACTIONS = (("/data", "data.read"), ("/htsget", "htsget"), ("/ga4gh/drs", "drs"), ("/api", "beacon.query"))


async def audit_denial(request: Request, error: GenoshareError) -> None:
    """Count a refusal in the audit log, unless the access policy already wrote it (``error.audited``)."""
    path = request.url.path
    action = next((name for prefix, name in _ACTIONS if path.startswith(prefix)), "http")
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None and error.status_code in _DENIALS:
        metrics.denials.labels(action, error.code).inc()
    denials: DenialLog | None = getattr(request.app.state, "denials", None)
    if denials is None or error.status_code not in _DENIALS or error.audited:
        return
    action, resource, details = error.audit_as or (action, path, {})
    # The refusal stands whether or not it could be written: a failing audit write must not turn the
    # client's 401 into a 500 (data that is served fails closed instead: its entry is written first).
    try:
        await run_in_threadpool(
            denials.deny,
            actor=getattr(request.state, "actor", ANONYMOUS),
            client=request.client.host if request.client else "unknown",
            action=action,
            resource=resource,
            status=error.status_code,
            code=error.code,
            reason=error.message,
            method=request.method,
            details=details,
        )
    except Exception:
        log.exception("a refused request could not be written to the audit log")


def install_error_handlers(app: FastAPI) -> None:
    node = getattr(app.state, "node", None)
    if node is not None:
        app.state.denials = DenialLog(node.audit)

    @app.exception_handler(GenoshareError)
    async def _genoshare(request: Request, error: GenoshareError) -> JSONResponse:
        await audit_denial(request, error)
        headers = {"WWW-Authenticate": 'Bearer realm="genoshare"'} if error.status_code == 401 else {}
        # Headers an error's standard requires of it (a 416's Content-Range).
        headers.update(getattr(error, "headers", None) or {})
        return _response(request, error.status_code, error.code, error.message, headers or None)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, error: RequestValidationError) -> JSONResponse:
        problems = "; ".join(f"{_location(item.get('loc', ()))}: {item.get('msg')}" for item in error.errors())
        return _response(request, 400, "InvalidInput", f"invalid request: {problems}")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        headers = getattr(error, "headers", None)
        if error.status_code == 405:
            # Starlette names only the first matching route's methods; a path served by several routes
            # (GET here, POST there) must list them all.
            headers = {"Allow": ", ".join(allowed_methods(app, request.url.path))}
        return _response(
            request, error.status_code, _HTSGET_NAMES.get(error.status_code, "InvalidInput"), str(error.detail), headers
        )

    @app.exception_handler(PoolTimeout)
    async def _pool_exhausted(request: Request, error: PoolTimeout) -> JSONResponse:
        # Every connection of the process's pool stayed in use for database.pool_timeout_seconds: overload.
        log.warning("no database connection came free for %s %s: %s", request.method, request.url.path, error)
        return _response(
            request, 503, "ServiceUnavailable", "the node is busy; retry in a moment", {"Retry-After": "1"}
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        # The message could hold data; the log gets the traceback, the client a generic line.
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _response(request, 500, "InternalError", "internal error; the node operator can find it in the log")
