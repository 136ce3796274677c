"""The portal's front page: what this node offers, and where each kind of visitor goes from here."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from genoshare.portal.i18n import N_
from genoshare.portal.web import NavItem, ViewerDep, portal_router, render

router = portal_router()
NAV: list[NavItem] = [NavItem("/portal/", N_("Home"))]


@router.get("/")
def front_page(request: Request, viewer: ViewerDep) -> HTMLResponse:
    portal = request.app.state.portal
    return render(request, "home.html", node_name=portal.settings.node_name, organization=portal.settings.organization)
