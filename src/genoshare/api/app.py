"""Builds the node's ASGI application from a ``Node``; no configuration is read at import time."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from genoshare import __version__
from genoshare.api import beacon, clinical, data, drs, governance, htsget, mme, network
from genoshare.api.errors import install_error_handlers
from genoshare.api.observability import install_observability
from genoshare.api.openapi import install_openapi
from genoshare.beacon import framework
from genoshare.network.requests import NetworkRequests
from genoshare.network.service import NetworkService
from genoshare.node import (
    PRIVATE_UMASK,
    Node,
    build_clinical_lookup,
    build_matchmaker,
    build_matchmaker_client,
    build_services,
)
from genoshare.portal.app import install_portal
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


def registry_entries(node: Node) -> list[dict[str, Any]]:
    """The node's services as a GA4GH Service Registry lists them (``/services``), each with its base URL."""
    settings = node.settings
    url, node_id = settings.public_url, settings.node_id
    beacon = {**framework.service_info(settings), "id": f"{node_id}.beacon", "url": f"{url}/api"}
    drs = {**service_info(node), "id": f"{node_id}.drs", "url": f"{url}/ga4gh/drs/v1"}
    return [beacon, drs]


def create_app(node: Node) -> FastAPI:
    # Every service made once, now: routers reach them through ``genoshare.api.deps``.
    services = build_services(node)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.rederivations.resume()
        if node.settings.mme.peers:  # HPO and its information content load in the background, not on a request
            threading.Thread(target=app.state.mme.warm, name="mme-warm", daemon=True).start()
        yield
        services.rederivations.shutdown()
        await app.state.network.close()
        app.state.denials.flush()

    app = FastAPI(
        title="genoshare",
        version=__version__,
        description="A GA4GH node: discover with Beacon v2, retrieve with DRS 1.5 and htsget 1.3.",
        lifespan=lifespan,
    )
    app.state.node = node
    app.state.services = services
    # The Beacon network (``/network/api``): asks the peers in the node's settings and registries.
    app.state.network = NetworkService(node.settings.network, node.settings.public_url)
    app.state.network_requests = NetworkRequests(node.database)
    app.state.registry_entries = registry_entries(node)
    # Matchmaker Exchange (``/mme``) and the clinical variant lookup, both on the Beacon's caches.
    app.state.mme = build_matchmaker(node, services.beacon)
    app.state.mme_client = build_matchmaker_client(node)
    app.state.clinical = build_clinical_lookup(node, services.beacon)
    install_error_handlers(app)
    install_openapi(app)
    # Request ids, the access log, metrics, and the probes /health, /ready and /metrics.
    install_observability(app, node)
    # A request is tried against each route in turn until one matches: the network's first, as every other
    # router it would be tried against costs it (the network's own cost to the others is a prefix check).
    app.include_router(network.router)
    app.include_router(network.registry)
    app.include_router(network.requests_router)
    app.include_router(drs.router)
    app.include_router(data.router)
    app.include_router(governance.router)
    app.include_router(beacon.router)
    app.include_router(htsget.router)
    # The web portal's pages (server-rendered HTML; ``genoshare.portal``) and ``/`` leading to them.
    install_portal(app, node, services)
    app.include_router(mme.router)
    app.include_router(clinical.router)

    @app.get("/service-info", tags=["Service info"], summary="GA4GH service-info of this node")
    def node_service_info() -> dict[str, Any]:
        return service_info(node)

    return app


def app_from_environment() -> FastAPI:
    """Entry point for ``uvicorn --factory genoshare.api.app:app_from_environment``."""
    os.umask(PRIVATE_UMASK)
    settings: Settings = load_settings()
    return create_app(Node.open(settings))
