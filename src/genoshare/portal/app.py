"""Mounts the portal on the node's application: its pages, its static files, and ``/`` leading to it."""

from __future__ import annotations

import hashlib

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from genoshare.node import Node, Services
from genoshare.portal import account, clinical, committee, home, participant, researcher, steward
from genoshare.portal.oidc import OidcClient
from genoshare.portal.oidc import install_log_filter as oidc_log_filter
from genoshare.portal.sessions import SessionStore, load_or_create_key
from genoshare.portal.web import PREFIX, STATIC, Portal

#: The page modules: each has a ``router`` and a ``NAV`` (its links in the site navigation).
PAGES = (home, researcher, clinical, committee, steward, account, participant)
#: The key a visitor's form token is signed with (``web.visitor_csrf``), in the node's keys directory.
VISITOR_KEY_FILE = "portal-visitor.key"


def install_portal(app: FastAPI, node: Node, services: Services) -> Portal:
    settings = node.settings
    portal = Portal(
        settings=settings,
        sessions=SessionStore(node.database, settings.portal.session_hours),
        roles=node.roles,
        services=services,
        remembered=node.passports.remembered,
        verify=node.passports.verify,
        oidc=OidcClient(settings.portal, node.http) if settings.portal.oidc_issuer else None,
        visitor_key=load_or_create_key(settings.keys_dir / VISITOR_KEY_FILE),
        static_urls={
            path.name: f"{PREFIX}/static/{path.name}?v={hashlib.sha256(path.read_bytes()).hexdigest()[:12]}"
            for path in STATIC.iterdir()
            if path.is_file()
        },
    )
    for page in PAGES:
        portal.nav.extend(page.NAV)
        app.include_router(page.router)
    # A participant's consent link, {public_url}/consent/{secret}; no log line of this server names the secret.
    app.include_router(participant.links)
    participant.install_log_filter()
    oidc_log_filter()  # the broker's code and state never reach a log line
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="portal-static")
    # Last: any other /portal/... address is a page that does not exist, said as a page (not JSON).
    app.include_router(home.not_found)
    app.state.portal = portal

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)

    return portal
