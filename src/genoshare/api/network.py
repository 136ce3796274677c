"""The Beacon network on ``/network/api/...`` and the node's own GA4GH Service Registry on ``/services``.

``/network/api/<entry path>`` takes any Beacon entry query (GET parameters or POST body, as ``/api`` does)
and answers it from this node and every peer at once (``genoshare.network``): one Beacon v2 answer that
merges what each node gave within its deadline and names each node that did not, with why.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import fields, replace
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor

from genoshare.access.passports import Identity
from genoshare.api.beacon import QUERY_DOCUMENTATION, BeaconJSON, BeaconRoute, PagingDep
from genoshare.api.deps import AccessRequestsDep, NodeDep, PassportBearer, get_beacon
from genoshare.api.errors import audit_denial
from genoshare.api.governance import RequestBody
from genoshare.api.routing import PrefixRouter
from genoshare.beacon import framework, openapi
from genoshare.beacon.framework import BY_PATH, EntryType, error_body
from genoshare.beacon.request import API_VERSION, BeaconRequest, from_body, from_query, page
from genoshare.beacon.service import BeaconService, Parent
from genoshare.errors import GenoshareError, InvalidInput, NotFound, Unauthenticated
from genoshare.governance.requests import IDEMPOTENCY_KEY, AccessRequests, NewRequest, view
from genoshare.network.about import NodeAbout, about, union_of_terms
from genoshare.network.merge import (
    ANSWERED,
    ERROR,
    INVALID,
    REFUSED,
    TIMEOUT,
    InvalidAnswer,
    NodeAnswer,
    merge,
    read_answer,
)
from genoshare.network.peers import PeerNode
from genoshare.network.requests import LAST_KNOWN_NOTICE, NetworkRequests
from genoshare.network.service import UNKNOWN, NetworkService, PeerCall, passport_for
from genoshare.node import Node
from genoshare.settings import Settings

NO_NODE_ANSWERED: dict[int | str, dict[str, Any]] = {
    502: {"description": "No node of the network answered: each one is named with why"},
    504: {"description": "No node of the network answered, and some ran out of time: each is named with why"},
}
router = PrefixRouter(
    prefix="/network/api",
    tags=["Beacon network"],
    route_class=BeaconRoute,
    responses={**openapi.ERROR_RESPONSES, **NO_NODE_ANSWERED},
)
registry = PrefixRouter(prefix="/services", tags=["Service registry"])
requests_router = PrefixRouter(
    prefix="/network/governance",
    tags=["Beacon network"],
    responses={
        400: {"description": "A dataset URL of no node of this network"},
        401: {"description": "No passport, or one that does not verify."},
    },
)


TokenDep = Annotated[str | None, Depends(PassportBearer())]


class EntryPath(Convertor[str]):
    """Any path but those of what the network says about itself, which are GET only (a POST there is a 405)."""

    regex = r"(?!(?:info|map|entry_types|configuration|filtering_terms)/?$).*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("entry_path", EntryPath())


def _target(path: str) -> tuple[EntryType, Parent | None]:
    """The entry type a path asks for and the ``/{entry}/{id}`` it is scoped to, as ``/api`` routes them."""
    parts = path.strip("/").split("/")
    entry = BY_PATH.get(parts[0])
    if "filtering_terms" in parts:  # on /api a route of its own, never an id: the network has one list of terms
        raise NotFound(f"/network/api/{path}: the network's filtering terms are /network/api/filtering_terms")
    if entry is not None and len(parts) == 1:
        return entry, None
    if entry is not None and len(parts) == 2 and parts[1]:
        return entry, Parent(entry.path, parts[1])
    if entry is not None and len(parts) == 3 and parts[1] and parts[2] in entry.related and parts[2] in BY_PATH:
        return BY_PATH[parts[2]], Parent(entry.path, parts[1])
    raise NotFound(f"/network/api/{path} is not a Beacon entry path (see /api/map for the entry paths)")


async def _local(
    request: Request,
    beacon: BeaconService,
    entry: EntryType,
    parent: Parent | None,
    query: BeaconRequest,
    token: str | None,
) -> tuple[str, str | None, Any, str, int | None]:
    """The node's own answer as the network sees it: status, reason, document, passport, error status.

    Its refusals are audited as ``/api`` audits them (a forged passport is one), though the network answers.
    """
    node: Node = request.app.state.node
    identity: Identity | None = None
    passport = "none given"
    try:
        if token:
            identity = await _identify(node, token)
            passport = "verified"
            request.state.actor = identity.actor  # who the audit log names if the Beacon refuses
        document = await run_in_threadpool(beacon.query, entry, query, identity, parent)
    except GenoshareError as error:
        await audit_denial(request, error)
        if token and identity is None:
            passport = f"refused: {error.message}"
        status = REFUSED if error.status_code in (401, 403, 429) else ERROR
        return status, error.message, None, passport, error.status_code
    return ANSWERED, None, document, passport, None


async def _network_answer(
    request: Request, path: str, query: BeaconRequest, body: bytes | None, token: str | None
) -> Response:
    node: Node = request.app.state.node
    network: NetworkService = request.app.state.network
    beacon = await get_beacon(request)
    entry, parent = _target(path)
    settings = node.settings
    raw_query = request.url.query
    started = time.perf_counter()
    (status, reason, document, passport, code), (peers, problems) = await asyncio.gather(
        _local(request, beacon, entry, parent, query, token),
        network.ask(path, query=raw_query, body=body, token=token),
    )
    local_url = f"{settings.public_url}/api/{path}"
    result = None
    if document is not None:
        try:
            result = read_answer(document)
        except InvalidAnswer as error:  # pragma: no cover - this node's own answers validate (tests/beacon)
            status, reason = ERROR, str(error)
    own = NodeAnswer(
        settings.node_name,
        settings.public_url,
        f"{local_url}?{raw_query}" if raw_query and body is None else local_url,
        status,
        time.perf_counter() - started,
        reason,
        result,
        passport,
        code,
    )
    nodes = [own, *peers]
    if not any(n.result is not None for n in nodes):
        # Every node said why: one client error they all agree on (a 404 for an id nobody holds) is that
        # error; otherwise the network could not answer: 504 if a node ran out of time, else 502.
        codes = {n.http_status for n in nodes}
        agreed = codes.pop() if len(codes) == 1 else None
        status_code = agreed if agreed is not None and 400 <= agreed < 500 else 502
        if any(n.status == TIMEOUT for n in nodes):
            status_code = 504
        # A registry that could not be read (fewer nodes asked) is said here too, as with every answer.
        why = "; ".join([*(f"{n.name}: {n.status} ({n.reason})" for n in nodes), *problems])
        failed = error_body(settings, status_code, f"no node of the network answered: {why}")
        return BeaconJSON(failed, status_code=status_code)
    meta = {
        "beaconId": settings.node_id,
        "apiVersion": API_VERSION,
        "returnedSchemas": [entry.schema_ref()],
        "receivedRequestSummary": query.summary(),
        "testMode": query.test_mode,
    }
    return BeaconJSON(merge(meta, nodes, network.deadline, problems))


def _admitted(request: Request) -> AbstractAsyncContextManager[None]:
    """One of the client address's places for a network answer (``network.max_queries_per_caller``), or 429."""
    network: NetworkService = request.app.state.network
    return network.admitted(request.client.host if request.client else "")


async def _query_parameters(request: Request) -> BeaconRequest:
    try:
        parameters = openapi.QueryParameters.model_validate(dict(request.query_params))
    except ValidationError as error:
        raise RequestValidationError(error.errors(include_url=False)) from error
    return from_query(parameters)


# -- what the network says about itself ------------------------------------------------------------------

OWN_ABOUT: dict[str, Callable[[Settings], dict[str, Any]]] = {
    "info": framework.info,
    "map": framework.beacon_map,
    "entry_types": framework.entry_types,
    "configuration": framework.configuration,
}


def _network_map(own: dict[str, Any], public_url: str) -> dict[str, Any]:
    """The node's map with the network's URLs (``/network/api/...``).

    Without the per-entry filtering terms, which the network does not serve (``/network/api/filtering_terms``).
    """
    local, served = f"{public_url}/api/", f"{public_url}/network/api/"
    sets = {}
    for name, entry in own["response"]["endpointSets"].items():
        moved = {k: v.replace(local, served, 1) if isinstance(v, str) else v for k, v in entry.items()}
        moved["endpoints"] = {
            target: {**endpoint, "url": endpoint["url"].replace(local, served, 1)}
            for target, endpoint in entry["endpoints"].items()
            if endpoint["returnedEntryType"] != "filteringTerm"
        }
        sets[name] = moved
    return {**own, "response": {**own["response"], "endpointSets": sets}}


async def _about(request: Request, kind: str, paging: openapi.Paging | None = None) -> Response:
    """The network's ``kind`` document: this node's, each peer's part named (``genoshare.network.about``)."""
    settings = request.app.state.node.settings
    network: NetworkService = request.app.state.network
    started = time.perf_counter()

    async def own_document() -> dict[str, Any]:
        if kind == "filtering_terms":
            beacon = await get_beacon(request)
            terms: dict[str, Any] = await run_in_threadpool(beacon.filtering_terms, 0, 0, None)
            return terms
        return OWN_ABOUT[kind](settings)

    async with _admitted(request):
        own, (peers, problems) = await asyncio.gather(own_document(), network.ask_about(kind))
    mine = NodeAbout(settings.node_name, settings.public_url, ANSWERED, time.perf_counter() - started, None, own)
    nodes = [mine, *(NodeAbout.read(kind, p.name, p.url, c.status, c.seconds, c.reason, c.document) for p, c in peers)]
    if kind == "map":
        own = _network_map(own, settings.public_url)
    document = about(kind, own, nodes, network.deadline, problems)
    if kind == "filtering_terms":
        skip, limit = page(paging.skip, paging.limit or 0) if paging else (0, 0)
        document["response"] = {**own["response"], **union_of_terms(nodes, skip, limit)}
    return BeaconJSON(document)


_ABOUT_NOTE = " Each peer is named in `info.network.nodes` with what it said, or why it did not answer."


@router.get("", summary="The network's Beacon info", description="This node's Beacon info." + _ABOUT_NOTE)
@router.get("/info", summary="The network's Beacon info", description="This node's Beacon info." + _ABOUT_NOTE)
async def network_info(request: Request) -> Response:
    return await _about(request, "info")


@router.get("/map", summary="The network's Beacon map", description="The entry paths of `/network/api`." + _ABOUT_NOTE)
async def network_map(request: Request) -> Response:
    return await _about(request, "map")


@router.get(
    "/entry_types",
    summary="The network's entry types",
    description="The entry types `/network/api` asks for; `info.network.entryTypes` names the nodes offering each."
    + _ABOUT_NOTE,
)
async def network_entry_types(request: Request) -> Response:
    return await _about(request, "entry_types")


@router.get("/configuration", summary="The network's Beacon configuration", description=_ABOUT_NOTE.strip())
async def network_configuration(request: Request) -> Response:
    return await _about(request, "configuration")


@router.get(
    "/filtering_terms",
    summary="Every node's filtering terms, once each",
    description="The union of every node's filtering terms; each term's `nodes` names the nodes offering it."
    + _ABOUT_NOTE,
)
async def network_filtering_terms(request: Request, paging: PagingDep) -> Response:
    return await _about(request, "filtering_terms", paging)


@router.get(
    "/{path:entry_path}",
    summary="Ask every node of the network (GET)",
    description="Any Beacon entry path of `/api` (e.g. `g_variants`, `individuals/{id}/g_variants`), asked of "
    "this node and its peers at once; the answer merges theirs and names every node that did not answer.",
    response_model=dict[str, Any],
    openapi_extra=QUERY_DOCUMENTATION,
)
async def network_get(request: Request, path: str, token: TokenDep) -> Response:
    async with _admitted(request):
        return await _network_answer(request, path, await _query_parameters(request), None, token)


@router.post("/{path:entry_path}", summary="Ask every node of the network (POST)", response_model=dict[str, Any])
async def network_post(request: Request, path: str, token: TokenDep, body: openapi.BeaconRequestBody) -> Response:
    raw = await request.body()
    async with _admitted(request):
        return await _network_answer(request, path, from_body(body), raw, token)


# -- access requests across the network ------------------------------------------------------------------


async def _identify(node: Node, token: str | None) -> Identity:
    if not token:
        raise Unauthenticated("send your GA4GH passport as a bearer token")
    identity = node.passports.remembered(token)
    return identity if identity is not None else await run_in_threadpool(node.passports.verify, token)


async def _accepted_somewhere(node: Node, network: NetworkService, token: str | None) -> None:
    """Refuse (401) a passport no node of the network would take: this node refuses it, no peer trusts its issuer.

    One that some peer may take is let through: the answer's parts say where it was refused.
    """
    try:
        await _identify(node, token)
    except Unauthenticated:
        peers, _ = await network.peers()
        if not any(passport_for(peer, token)[0] for peer in peers):
            raise


async def _verified_actor(node: Node, token: str | None) -> str | None:
    """The researcher as this node verified them (``subject@issuer``); None if it cannot verify the passport.

    Their requests on other nodes are kept, and shown when a node is down, only for a verified researcher.
    """
    try:
        return (await _identify(node, token)).actor
    except GenoshareError:
        return None


def _part(name: str, url: str, status: str, **more: Any) -> dict[str, Any]:
    return {"node": name, "url": url, "status": status, **{k: v for k, v in more.items() if v is not None}}


async def _by_node(
    network: NetworkService, own_url: str, datasets: list[str]
) -> tuple[list[str], dict[str, tuple[PeerNode, list[str]]]]:
    """The node's own dataset ids, and each peer's (peer -> ids); a URL of no known node is refused."""
    peers, _ = await network.peers()
    local: list[str] = []
    remote: dict[str, tuple[PeerNode, list[str]]] = {}
    for entry in datasets:
        if not entry.startswith(("http://", "https://")):
            local.append(entry)
            continue
        base, marker, dataset_id = entry.rstrip("/").rpartition("/datasets/")
        if not marker or not dataset_id or "/" in dataset_id:
            raise InvalidInput(f"{entry!r} is not a dataset URL (<node URL>/datasets/<id>)")
        if base == own_url:
            local.append(dataset_id)
            continue
        peer = next((p for p in peers if p.url == base), None)
        if peer is None:
            raise InvalidInput(f"{entry!r} is on {base}, which is not a node of this network (genoshare network list)")
        remote.setdefault(peer.url, (peer, []))[1].append(dataset_id)
    return local, remote


def _idempotency_key(description: str) -> Any:
    """The ``Idempotency-Key`` header, held to what a node takes as a key (``governance.requests``)."""
    return Header(alias="Idempotency-Key", pattern=f"^{IDEMPOTENCY_KEY.pattern}$", description=description)


IdempotencyKeyDep = Annotated[
    str | None,
    _idempotency_key(
        "Names this request (a UUID of yours): sent again with the same key, it is made at most once at each "
        "node, and each node answers with the request it made. Default: one chosen for you (`idempotencyKey`)."
    ),
]
PartKeyDep = Annotated[
    str, _idempotency_key("The key the forwarding node sent the request under: the same key, the same request.")
]
#: Where a node takes its part of a request another node forwards (``receive_part``).
PARTS_PATH = "/network/governance/parts"
RETRY_NOTICE = (
    "Some nodes were sent the request and gave no answer saying what became of it (status unknown): it may have "
    "been made there. Send the same request again with this Idempotency-Key: each node makes it at most once, "
    "and answers with the one it made."
)


def _new_request(body: RequestBody, datasets: list[str]) -> NewRequest:
    """The body's every field, with ``datasets`` (this node's part of them)."""
    given = {f.name: getattr(body, f.name) for f in fields(NewRequest) if f.name != "datasets"}
    return NewRequest(datasets, **given)


@requests_router.post(
    "/requests",
    summary="Request access to datasets on several nodes at once",
    description="Each node's committee decides its own datasets; the parts are forwarded with your passport "
    "to the nodes that trust its issuer, each under the request's `Idempotency-Key` (yours, or one chosen for "
    "you and returned as `idempotencyKey`). `201` when every part was submitted; otherwise `200`, with each "
    "part's outcome. A part `unknown` was sent and not answered in time: it may have been made, and the "
    "answer's `retry` says how to send the request again safely (same body, same key).",
)
async def network_submit(
    request: Request,
    body: RequestBody,
    token: TokenDep,
    node: NodeDep,
    requests: AccessRequestsDep,
    idempotency_key: IdempotencyKeyDep = None,
) -> Response:
    key = idempotency_key if idempotency_key is not None else str(uuid.uuid4())
    async with _admitted(request):
        return await _submit(request, body, token, node, requests, key)


async def _submit(
    request: Request, body: RequestBody, token: str | None, node: Node, requests: AccessRequests, key: str
) -> Response:
    network: NetworkService = request.app.state.network
    kept: NetworkRequests = request.app.state.network_requests
    settings = node.settings
    await _accepted_somewhere(node, network, token)
    local, remote = await _by_node(network, settings.public_url, body.datasets)
    sent = await request.json()
    actor = await _verified_actor(node, token)

    async def submit_local() -> dict[str, Any]:
        try:
            identity = await _identify(node, token)
            made, _ = await run_in_threadpool(requests.submit_once, identity, _new_request(body, local), key)
        except GenoshareError as error:
            status = REFUSED if error.status_code in (401, 403) else ERROR
            return _part(settings.node_name, settings.public_url, status, datasets=local, reason=error.message)
        return _part(settings.node_name, settings.public_url, "submitted", datasets=local, request=view(made))

    async def submit_remote(peer: PeerNode, ids: list[str]) -> dict[str, Any]:
        sendable, passport = passport_for(peer, token)
        if sendable is None:
            return _part(peer.name, peer.url, "not sent", datasets=ids, reason=f"your passport was {passport}")
        part = json.dumps({**sent, "datasets": ids}).encode()
        call = await network.submit(peer, f"{peer.url}{PARTS_PATH}", part, token, key)
        if call.status != ANSWERED:
            return _part(peer.name, peer.url, call.status, datasets=ids, reason=call.reason)
        if actor is not None:  # listed at this node from now on, even while that node is down
            await run_in_threadpool(kept.remember, actor, peer.name, peer.url, [call.document])
        return _part(peer.name, peer.url, "submitted", datasets=ids, request=call.document)

    parts = await asyncio.gather(
        *([submit_local()] if local else []), *(submit_remote(peer, ids) for peer, ids in remote.values())
    )
    complete = all(part["status"] == "submitted" for part in parts)
    answer: dict[str, Any] = {"complete": complete, "idempotencyKey": key, "requests": list(parts)}
    if any(part["status"] == UNKNOWN for part in parts):
        url = f"{settings.public_url}/network/governance/requests"
        answer["retry"] = {"method": "POST", "url": url, "headers": {"Idempotency-Key": key}, "notice": RETRY_NOTICE}
    return BeaconJSON(answer, status_code=201 if complete else 200)


@requests_router.post(
    "/parts",
    status_code=201,
    summary="Take this node's part of a request made on several nodes (what another node forwards)",
    description="Makes the access request here, as `POST /governance/requests` does, under the `Idempotency-Key` "
    "(required): sent again with the same key by the same researcher, it answers `200` with the request made "
    "the first time and makes none; the same key with another request is a `409`.",
    responses={
        200: {"description": "Made before under this key: that request"},
        409: {"description": "The key was used for another request"},
    },
)
async def receive_part(
    body: RequestBody,
    token: TokenDep,
    node: NodeDep,
    requests: AccessRequestsDep,
    idempotency_key: PartKeyDep,
) -> Response:
    identity = await _identify(node, token)
    made, new = await run_in_threadpool(
        requests.submit_once, identity, _new_request(body, body.datasets), idempotency_key
    )
    return JSONResponse(view(made), status_code=201 if new else 200)


@requests_router.get("/requests", summary="Your access requests on every node of the network, in one list")
async def network_requests(request: Request, token: TokenDep, node: NodeDep, requests: AccessRequestsDep) -> Response:
    async with _admitted(request):
        return await _requests_everywhere(request, token, node, requests)


async def _requests_everywhere(request: Request, token: str | None, node: Node, requests: AccessRequests) -> Response:
    network: NetworkService = request.app.state.network
    kept: NetworkRequests = request.app.state.network_requests
    settings = node.settings
    await _accepted_somewhere(node, network, token)
    peers, _ = await network.peers()
    actor = await _verified_actor(node, token)

    async def local() -> dict[str, Any]:
        try:
            identity = await _identify(node, token)
            mine = await run_in_threadpool(requests.visible_to, identity, None)
        except GenoshareError as error:
            status = REFUSED if error.status_code in (401, 403) else ERROR
            return _part(settings.node_name, settings.public_url, status, reason=error.message)
        return _part(settings.node_name, settings.public_url, ANSWERED, requests=[view(r) for r in mine])

    async def remote(peer: PeerNode) -> dict[str, Any]:
        sendable, passport = passport_for(peer, token)
        if sendable is None:
            call = PeerCall("not asked", f"your passport was {passport}", None, passport, 0.0)
        else:
            call = await network.call(peer, f"{peer.url}/governance/requests", None, token)
        if call.status == ANSWERED and not isinstance(call.document, list):
            call = replace(call, status=INVALID, reason="not a list of access requests")
        if call.status == ANSWERED:
            if actor is not None:
                await run_in_threadpool(kept.remember, actor, peer.name, peer.url, call.document)
            return _part(peer.name, peer.url, ANSWERED, requests=call.document)
        # Not asked, or no usable answer: what the node last said, told as that, beside why not now.
        last = await run_in_threadpool(kept.last_known, actor, peer.url) if actor is not None else []
        known = {"notice": LAST_KNOWN_NOTICE, "requests": last} if last else None
        return _part(peer.name, peer.url, call.status, reason=call.reason, lastKnown=known)

    nodes = await asyncio.gather(local(), *(remote(peer) for peer in peers))
    return BeaconJSON({"nodes": list(nodes)})


# -- the node's own Service Registry ----------------------------------------------------------------------


def _services(request: Request) -> list[dict[str, Any]]:
    services: list[dict[str, Any]] = request.app.state.registry_entries
    return services


@registry.get("", summary="This node's GA4GH services (GA4GH Service Registry)")
def services(request: Request) -> list[dict[str, Any]]:
    return _services(request)


@registry.get("/types", summary="The types of this node's services")
def service_types(request: Request) -> list[dict[str, Any]]:
    types = {tuple(sorted(s["type"].items())): s["type"] for s in _services(request)}
    return list(types.values())


@registry.get(
    "/{service_id}", summary="One of this node's services", responses={404: {"description": "No such service"}}
)
def service_by_id(request: Request, service_id: str, node: NodeDep) -> dict[str, Any]:
    for service in _services(request):
        if service["id"] == service_id:
            return service
    raise NotFound(f"no service {service_id!r} on {node.settings.public_url}")
