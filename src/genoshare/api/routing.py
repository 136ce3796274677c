"""Routing that looks at a request only in the routers whose paths it can be.

FastAPI tries each route of each included router in turn until one matches, a few microseconds a route:
a request for a router registered late was tried against every route of every router before it (a
``/network/api`` query against the 67 routes of ``/api`` and the portal's, about 0.7 ms of the hub's CPU).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette._utils import get_route_path
from starlette.routing import Match
from starlette.types import Scope


class PrefixRouter(APIRouter):
    """An ``APIRouter`` whose routes all lie under its ``prefix``: another path is not tried route by route.

    Include it at the application's root (not under a further prefix), as every router of the node is.
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not get_route_path(scope).startswith(self.prefix):
            return Match.NONE, {}
        return super().matches(scope)
