"""DRS 1.5 routes under ``/ga4gh/drs/v1``; the protocol logic is ``genoshare.drs.service``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from pydantic import BaseModel, Field

from genoshare.access.passports import Identity
from genoshare.api.deps import IdentityDep, NodeDep, bearer_token
from genoshare.drs.service import DrsService
from genoshare.errors import InvalidInput
from genoshare.node import Node

router = APIRouter(prefix="/ga4gh/drs/v1", tags=["DRS"])


class PassportsBody(BaseModel):
    passports: list[str] = Field(default_factory=list)


class PostObjectBody(PassportsBody):
    expand: bool = False


class BulkObjectsBody(PassportsBody):
    bulk_object_ids: list[str]
    expand: bool = False


class BulkIdsBody(BaseModel):
    bulk_object_ids: list[str]


class BulkAccessItem(BaseModel):
    bulk_object_id: str
    bulk_access_ids: list[str]


class BulkAccessBody(PassportsBody):
    bulk_object_access_ids: list[BulkAccessItem]


def _identity(node: Node, request: Request, passports: list[str]) -> Identity | None:
    """A passport from the body (DRS PassportAuth) or else from the bearer header."""
    if len(passports) > 1:
        raise InvalidInput("send one passport (its visas are combined by the broker that issued it)")
    token = passports[0] if passports else bearer_token(request)
    return node.passports.verify(token) if token else None


@router.get("/service-info", summary="DRS service info")
def service_info(node: NodeDep) -> dict[str, Any]:
    return DrsService(node).service_info()


# Before /objects/{object_id}, which would otherwise take 'access' for an object id.
@router.post("/objects/access", summary="Get URLs for fetching the bytes of several DrsObjects")
def bulk_access(node: NodeDep, request: Request, body: Annotated[BulkAccessBody, Body()]) -> dict[str, Any]:
    identity = _identity(node, request, body.passports)
    items = [(item.bulk_object_id, item.bulk_access_ids) for item in body.bulk_object_access_ids]
    return DrsService(node).bulk_access(items, identity)


@router.get("/objects/{object_id}", summary="Get info about a DrsObject")
def get_object(object_id: str, node: NodeDep, identity: IdentityDep, expand: bool = Query(False)) -> dict[str, Any]:
    return DrsService(node).get_object(object_id, identity, expand)


@router.post("/objects/{object_id}", summary="Get info about a DrsObject, with a passport in the body")
def post_object(
    object_id: str, node: NodeDep, request: Request, body: Annotated[PostObjectBody, Body()]
) -> dict[str, Any]:
    return DrsService(node).get_object(object_id, _identity(node, request, body.passports), body.expand)


@router.options("/objects/{object_id}", summary="Authorizations of a DrsObject")
def options_object(object_id: str, node: NodeDep) -> dict[str, Any]:
    return DrsService(node).authorizations(object_id)


@router.get("/objects/{object_id}/access/{access_id}", summary="Get a URL for fetching bytes")
def get_access(object_id: str, access_id: str, node: NodeDep, identity: IdentityDep) -> dict[str, Any]:
    return DrsService(node).access_url(object_id, access_id, identity)


@router.post("/objects/{object_id}/access/{access_id}", summary="Get a URL for fetching bytes, passport in body")
def post_access(
    object_id: str, access_id: str, node: NodeDep, request: Request, body: Annotated[PassportsBody, Body()]
) -> dict[str, Any]:
    return DrsService(node).access_url(object_id, access_id, _identity(node, request, body.passports))


@router.post("/objects", summary="Get info about several DrsObjects")
def bulk_objects(node: NodeDep, request: Request, body: Annotated[BulkObjectsBody, Body()]) -> dict[str, Any]:
    identity = _identity(node, request, body.passports)
    return DrsService(node).bulk_objects(body.bulk_object_ids, identity, body.expand)


@router.options("/objects", summary="Authorizations of several DrsObjects")
def bulk_options(node: NodeDep, body: Annotated[BulkIdsBody, Body()]) -> dict[str, Any]:
    authorizations = DrsService(node).bulk_authorizations(body.bulk_object_ids)
    return {
        "summary": {"requested": len(authorizations), "resolved": len(authorizations), "unresolved": 0},
        "resolved_drs_object": authorizations,
        "unresolved_drs_objects": [],
    }
