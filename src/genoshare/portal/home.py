"""The portal's front page: what this node offers, and where each kind of visitor goes from here."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import HTMLResponse

from genoshare.errors import NotFound
from genoshare.portal.i18n import N_
from genoshare.portal.web import NavItem, ViewerDep, portal_router, render, t

router = portal_router()
NAV: list[NavItem] = [NavItem("/portal/", N_("Home"))]


@router.get("/")
def front_page(request: Request, viewer: ViewerDep) -> HTMLResponse:
    portal = request.app.state.portal
    return render(request, "home.html", node_name=portal.settings.node_name, organization=portal.settings.organization)


#: Included after every other portal route and the static files (``install_portal``).
not_found = portal_router()


@not_found.get("/{rest:path}")
async def unknown_page(request: Request, rest: str, viewer: ViewerDep) -> HTMLResponse:
    raise NotFound(t(request, "There is no page at this address."))
