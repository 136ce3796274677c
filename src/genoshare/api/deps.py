"""Request dependencies: the node, its services (built once by ``create_app``), and who is calling.

They are ``async``: FastAPI runs a sync dependency in the thread pool, one hand-over per dependency per
request, which cost more than the work these do. A passport seen before is found in memory on the event
loop; verifying a new one (signatures, perhaps fetching an issuer's keys) still runs in a worker thread.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer
from starlette.concurrency import run_in_threadpool

from genoshare.access.passports import Identity
from genoshare.beacon.service import BeaconService
from genoshare.drs.reads import TicketReads
from genoshare.drs.service import DrsService
from genoshare.errors import Unauthenticated
from genoshare.governance.consent import ConsentService
from genoshare.governance.requests import AccessRequests
from genoshare.governance.usage import UsageReports
from genoshare.htsget.service import HtsgetService
from genoshare.node import Node, Services


async def get_node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


def services(request: Request) -> Services:
    built: Services = request.app.state.services
    return built


async def get_drs(request: Request) -> DrsService:
    return services(request).drs


async def get_htsget(request: Request) -> HtsgetService:
    return services(request).htsget


async def get_reads(request: Request) -> TicketReads:
    return services(request).reads


async def get_beacon(request: Request) -> BeaconService:
    return services(request).beacon


async def get_access_requests(request: Request) -> AccessRequests:
    return services(request).access_requests


async def get_consent(request: Request) -> ConsentService:
    return services(request).consent


async def get_usage(request: Request) -> UsageReports:
    return services(request).usage


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization header must be 'Bearer <passport JWT>'")
    return token.strip()


def identify(node: Node, token: str | None) -> Identity | None:
    return node.passports.verify(token) if token else None


class PassportBearer(HTTPBearer):
    """The passport in ``Authorization: Bearer``, read by ``bearer_token``.

    Being a security dependency, every route that takes a passport says so in the OpenAPI (``security``), and
    /docs offers to take one (its Authorize button).
    """

    def __init__(self) -> None:
        super().__init__(scheme_name="passport", bearerFormat="JWT", auto_error=False)

    async def __call__(self, request: Request) -> str | None:  # type: ignore[override]
        return bearer_token(request)


async def get_identity(
    request: Request,
    node: Annotated[Node, Depends(get_node)],
    token: Annotated[str | None, Security(PassportBearer())],
) -> Identity | None:
    if not token:
        return None
    # Not "remembered(...) or await ...": mypy then infers the awaited call as Identity | None too.
    identity = node.passports.remembered(token)
    if identity is None:
        identity = await run_in_threadpool(node.passports.verify, token)
    request.state.actor = identity.actor  # who the audit log names if a later step refuses the request
    return identity


NodeDep = Annotated[Node, Depends(get_node)]
DrsDep = Annotated[DrsService, Depends(get_drs)]
HtsgetDep = Annotated[HtsgetService, Depends(get_htsget)]
ReadsDep = Annotated[TicketReads, Depends(get_reads)]
BeaconDep = Annotated[BeaconService, Depends(get_beacon)]
AccessRequestsDep = Annotated[AccessRequests, Depends(get_access_requests)]
ConsentDep = Annotated[ConsentService, Depends(get_consent)]
UsageDep = Annotated[UsageReports, Depends(get_usage)]
IdentityDep = Annotated[Identity | None, Depends(get_identity)]
