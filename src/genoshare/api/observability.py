"""Request ids, the access log, latency metrics, and the probes ``/health``, ``/ready`` and ``/metrics``.

The access log and the metrics name a request by its route's template (``/data/{ticket}``), never by the
path the client sent: paths carry tickets and consent-link secrets, which a log must never hold.
"""

from __future__ import annotations

import logging
import os
import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy import text
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from genoshare.errors import Unavailable
from genoshare.node import AUDIT_KEY_FILE, NODE_KEY_NAME, Node
from genoshare.operations.logs import request_id
from genoshare.operations.metrics import Metrics
from genoshare.settings import CorsSettings

access_log = logging.getLogger("genoshare.access_log")
#: An id a client or proxy sends is kept if it is this plain; anything else is replaced by a new one.
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
#: Paths of the probes, kept out of the access log (a probe every few seconds would drown it).
_PROBES = frozenset({"/health", "/ready", "/metrics"})

router = APIRouter(tags=["Operations"])


class Observability:
    """ASGI middleware: a request id for each request (``X-Request-ID``, echoed), timed and logged once."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        rid = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        root = scope.get("root_path", "")
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers.append("X-Request-ID", rid)
                location = headers.get("location", "")
                if root and location.startswith("/") and not location.startswith((f"{root}/", "//")):
                    headers["location"] = root + location  # behind a proxy's path prefix, redirects keep it
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", None) or "(no route)"
            method = scope["method"]
            self.metrics.latency.labels(method, route, str(status)).observe(seconds)
            if route not in _PROBES:
                client = scope.get("client")
                access_log.info(
                    "%s %s %d",
                    method,
                    route,
                    status,
                    extra={
                        "method": method,
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                        "client": client[0] if client else "",
                    },
                )
            request_id.reset(token)


def readiness(node: Node) -> dict[str, str]:
    """Each dependency a request needs: ``ok``, or what is wrong with it."""
    checks: dict[str, str] = {}
    try:
        with node.database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as error:  # any driver error: the probe reports it rather than failing itself
        checks["database"] = f"unreachable: {type(error).__name__}"
    try:
        node.objects.check()  # a file store's permissions; an S3 store is asked over the network
        checks["objects"] = "ok"
    except Unavailable as error:
        checks["objects"] = error.message
    keys = node.settings.keys_dir
    missing = [name for name in (f"{NODE_KEY_NAME}.sec", AUDIT_KEY_FILE) if not os.access(keys / name, os.R_OK)]
    checks["keys"] = f"cannot read {', '.join(missing)}" if missing else "ok"
    return checks


@router.get("/health", summary="Liveness: the process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: database, object store and keys usable (503 naming what is not)")
async def ready(request: Request) -> JSONResponse:
    checks = await run_in_threadpool(readiness, request.app.state.node)
    ok = all(value == "ok" for value in checks.values())
    return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    body: Any = await run_in_threadpool(request.app.state.metrics.exposition)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


class RouteGroupCors:
    """ASGI middleware: CORS for the route groups ``cors`` names origins for, and none for any other route."""

    GROUPS: dict[str, tuple[str, ...]] = {
        "beacon": ("/api/",),
        "htsget": ("/htsget/", "/data/"),
        "drs": ("/ga4gh/drs/",),
    }

    def __init__(self, app: ASGIApp, cors: CorsSettings) -> None:
        self.app = app
        self.groups = [
            (prefixes, self._policy(app, getattr(cors, name)))
            for name, prefixes in self.GROUPS.items()
            if getattr(cors, name)
        ]

    @staticmethod
    def _policy(app: ASGIApp, origins: list[str]) -> CORSMiddleware:
        return CORSMiddleware(
            app,
            allow_origins=origins,
            allow_methods=["GET", "HEAD", "POST", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Range", "X-Request-ID"],
            expose_headers=["Content-Length", "Content-Range", "Accept-Ranges", "X-Request-ID"],
            allow_credentials=False,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.groups:
            path = scope["path"].removeprefix(scope.get("root_path", ""))
            for prefixes, policy in self.groups:
                if path.startswith(prefixes):
                    await policy(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def install_observability(app: FastAPI, node: Node) -> None:
    app.state.metrics = Metrics(node.database)
    app.add_middleware(RouteGroupCors, cors=node.settings.cors)
    app.add_middleware(Observability, metrics=app.state.metrics)
    app.include_router(router)
