"""The Matchmaker Exchange API under ``/mme``: ``POST /mme/match`` and ``GET /mme/heartbeat`` (MME API 1.1).

A thin adapter from HTTP to ``genoshare.clinical.mme``: the peer is known by its ``X-Auth-Token`` (refused
with 401 before anything else is read), the version by ``Content-Type`` (415, 406), the body checked
against the MME request (422). Errors carry the MME body, a JSON object with a human-readable ``message``;
answers carry the MME media type with this node's version.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool

from genoshare import __version__
from genoshare.access.matchmaking import trusted_peer
from genoshare.api.deps import IdentityDep
from genoshare.api.errors import audit_denial
from genoshare.clinical.mme import (
    MEDIA_TYPE,
    SUPPORTED_VERSIONS,
    MatchmakerClient,
    MatchmakerService,
    NotAcceptable,
    negotiate,
    parse_request,
)
from genoshare.errors import GenoshareError, InvalidInput, PermissionDenied, Unauthenticated
from genoshare.settings import MatchmakerPeer


class MatchmakerJSON(JSONResponse):
    """Answers and errors alike carry the MME media type with this node's version (so the OpenAPI says)."""

    media_type = MEDIA_TYPE


def error_response(status: int, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": 'Token realm="genoshare", header="X-Auth-Token"'} if status == 401 else None
    return MatchmakerJSON({"message": message, **extra}, status_code=status, headers=headers)


#: Every refusal this API gives, with the MME error body.
REFUSALS: dict[int | str, dict[str, Any]] = {
    400: {"description": "The body is not JSON."},
    401: {"description": "No X-Auth-Token, or one this node does not accept."},
    406: {"description": "An MME API version this node does not speak (supportedVersions)."},
    415: {"description": "The Content-Type names no MME API version."},
    422: {"description": "The body is not an MME match request."},
}


class MatchmakerRoute(APIRoute):
    """Errors raised while answering get the MME error body (and refusals an audit entry)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except NotAcceptable as error:
                return error_response(406, error.message, supportedVersions=list(SUPPORTED_VERSIONS))
            except GenoshareError as error:
                error.audit_as = error.audit_as or ("mme.match", request.url.path.lstrip("/"), {})
                await audit_denial(request, error)
                return error_response(error.status_code, error.message)

        return handle


router = APIRouter(
    prefix="/mme", tags=["Matchmaker Exchange"], route_class=MatchmakerRoute, default_response_class=MatchmakerJSON
)
AuthToken = Annotated[str | None, Header(alias="X-Auth-Token", description="The token this node gave your matchmaker.")]


def _peer(request: Request, token: str | None) -> MatchmakerPeer:
    peer = trusted_peer(request.app.state.node.settings.mme.peers, token)
    request.state.actor = f"mme:{peer.name}"
    return peer


@router.post(
    "/match",
    summary="Find patients like yours (Matchmaker Exchange search API 1.1)",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {MEDIA_TYPE: {"schema": {"type": "object", "required": ["patient"]}}},
        }
    },
    responses={200: {"description": "Matches, best first (possibly none)."}, **REFUSALS},
)
async def match(request: Request, token: AuthToken = None) -> Response:
    peer = _peer(request, token)
    negotiate(request.headers.get("content-type"), request.headers.get("accept"))
    raw = await request.body()
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:  # Recursion: nested too deep
        raise InvalidInput(f"the body is not JSON: {error}") from None
    parsed = parse_request(body)
    service: MatchmakerService = request.app.state.mme
    answer = await run_in_threadpool(service.match, peer.name, parsed)
    return MatchmakerJSON(answer)


@router.post(
    "/peers/match",
    summary="Send a patient to every configured Matchmaker Exchange peer (stewards)",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}}},
    response_class=JSONResponse,
    responses={
        200: {"description": "Each peer's answer, or why it gave none (answered, refused, failed, timed out)."},
        400: {"description": "The body is not JSON, or no peer is configured to be asked."},
        401: {"description": "No passport."},
        403: {"description": "Not one of the node's stewards."},
        422: {"description": "The body is not an MME match request."},
    },
)
async def ask_peers(request: Request, identity: IdentityDep) -> Response:
    """The node's own search of the network: the patient goes to each peer, each within its deadline.

    Only the node's stewards (``roles.stewards``) may send a patient out, as at the command line
    (``genoshare clinical match``); the search is audited under their name.
    """
    if identity is None:
        raise Unauthenticated("send your passport (Authorization: Bearer) to search the matchmaking peers")
    if not request.app.state.node.roles.is_steward(identity):
        raise PermissionDenied("only the node's stewards may send patients to the matchmaking peers")
    try:
        body = json.loads(await request.body())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as error:  # Recursion: nested too deep
        raise InvalidInput(f"the body is not JSON: {error}") from None
    parsed = parse_request(body)
    client: MatchmakerClient = request.app.state.mme_client
    answers = await run_in_threadpool(client.search, parsed, identity.actor)
    return JSONResponse({"peers": [answer.as_dict() for answer in answers]})


@router.get(
    "/heartbeat",
    summary="Whether this matchmaker is up, and the API versions it accepts",
    responses={401: REFUSALS[401]},
)
async def heartbeat(request: Request, token: AuthToken = None) -> Response:
    _peer(request, token)
    settings = request.app.state.node.settings
    body: dict[str, Any] = {
        "heartbeat": {
            "production": settings.environment == "prod",
            "version": __version__,
            "accept": [f"application/vnd.ga4gh.matchmaker.v{version}+json" for version in SUPPORTED_VERSIONS],
        }
    }
    if settings.mme.disclaimer:
        body["disclaimer"] = settings.mme.disclaimer
    return MatchmakerJSON(body)
