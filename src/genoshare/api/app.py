"""Builds the node's ASGI application from a ``Node``; no configuration is read at import time."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from genoshare import __version__
from genoshare.api import beacon, data, drs, governance, htsget
from genoshare.api.errors import install_error_handlers
from genoshare.api.openapi import install_openapi
from genoshare.beacon.service import BeaconService
from genoshare.governance.rederive import RederivationWorker
from genoshare.node import PRIVATE_UMASK, Node
from genoshare.settings import Settings, load_settings


def service_info(node: Node) -> dict[str, Any]:
    settings = node.settings
    return {
        "id": settings.node_id,
        "name": settings.node_name,
        "type": {"group": "org.ga4gh", "artifact": "drs", "version": "1.5.0"},
        "description": "genoshare node: DRS, htsget and Beacon v2 over encrypted data, gated by GA4GH Passports",
        "organization": {"name": settings.organization, "url": settings.public_url},
        "version": __version__,
        "environment": settings.environment,
    }


def create_app(node: Node) -> FastAPI:
    rederivations = RederivationWorker(node)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        rederivations.resume()
        yield
        rederivations.shutdown()
        app.state.denials.flush()

    app = FastAPI(
        title="genoshare",
        version=__version__,
        description="A GA4GH node: discover with Beacon v2, retrieve with DRS 1.5 and htsget 1.3.",
        lifespan=lifespan,
    )
    app.state.node = node
    # Made now, not on the first Beacon request: tests and governance hooks reach it from the start.
    app.state.beacon = BeaconService(node)
    app.state.rederivations = rederivations
    install_error_handlers(app)
    install_openapi(app)
    app.include_router(drs.router)
    app.include_router(data.router)
    app.include_router(governance.router)
    app.include_router(beacon.router)
    app.include_router(htsget.router)

    @app.get("/service-info", tags=["Service info"], summary="GA4GH service-info of this node")
    def node_service_info() -> dict[str, Any]:
        return service_info(node)

    return app


def app_from_environment() -> FastAPI:
    """Entry point for ``uvicorn --factory genoshare.api.app:app_from_environment``."""
    os.umask(PRIVATE_UMASK)
    settings: Settings = load_settings()
    return create_app(Node.open(settings))
