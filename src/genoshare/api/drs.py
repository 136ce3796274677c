"""DRS 1.5 routes under ``/ga4gh/drs/v1``; the protocol logic is ``genoshare.drs.service``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Body, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from genoshare.access.passports import Identity
from genoshare.api.deps import DrsDep, IdentityDep, NodeDep, bearer_token
from genoshare.api.openapi import PASSPORT
from genoshare.api.routing import PrefixRouter
from genoshare.drs import models
from genoshare.node import Node

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": models.Error, "description": description}
    for status, description in (
        (400, "The request is malformed."),
        (401, "The passport is missing, expired or not signed by a trusted issuer."),
        (403, "The passport does not grant access to this object."),
        (404, "No such object or access method."),
        (413, "Too many ids in one bulk request."),
    )
}
#: A checksum as DRS names its types (``sha-256``; ``sha256`` as sha256sum users write it), or a bare digest.
CHECKSUM = r"^(?:(?:sha-?256:)?[0-9A-Fa-f]{64}|(?:md5:)?[0-9A-Fa-f]{32})$"
router = PrefixRouter(prefix="/ga4gh/drs/v1", tags=["DRS"], responses=ERRORS)


class StrictBody(BaseModel):
    """Request bodies are read strictly: ``"expand": 0`` is an error, not ``false``."""

    model_config = ConfigDict(strict=True)


class PassportsBody(StrictBody):
    passports: list[str] = Field(default_factory=list)


class PostObjectBody(PassportsBody):
    expand: bool = False


class BulkObjectsBody(PassportsBody):
    bulk_object_ids: list[str] = Field(min_length=1)
    expand: bool = False


class BulkIdsBody(StrictBody):
    bulk_object_ids: list[str] = Field(min_length=1)


class BulkAccessItem(StrictBody):
    bulk_object_id: str
    bulk_access_ids: list[str] = Field(min_length=1)


class BulkAccessBody(PassportsBody):
    bulk_object_access_ids: list[BulkAccessItem] = Field(min_length=1)


def _identity(node: Node, request: Request, passports: list[str]) -> Identity | None:
    """Passports from the body (DRS PassportAuth) or else from the bearer header."""
    if passports:
        return node.passports.verify_all(passports)
    token = bearer_token(request)
    return node.passports.verify(token) if token else None


@router.get("/service-info", summary="DRS service info", response_model=models.ServiceInfo)
def service_info(drs: DrsDep) -> dict[str, Any]:
    return drs.service_info()


# Before /objects/{object_id}, which would otherwise take 'access' for an object id.
@router.post(
    "/objects/access",
    summary="Get URLs for fetching the bytes of several DrsObjects",
    openapi_extra=PASSPORT,
    response_model=models.BulkAccessURLs,
)
def bulk_access(
    node: NodeDep, drs: DrsDep, request: Request, body: Annotated[BulkAccessBody, Body()]
) -> dict[str, Any]:
    identity = _identity(node, request, body.passports)
    items = [(item.bulk_object_id, item.bulk_access_ids) for item in body.bulk_object_access_ids]
    return drs.bulk_access(items, identity)


@router.get(
    "/objects/checksum/{checksum}",
    summary="Find the DrsObjects you may read by checksum (sha-256:<hex>, md5:<hex>, or a bare hex digest)",
    description="Not in DRS 1.5: the path proposed for DRS in ga4gh/data-repository-service-schemas#419, "
    "answered in the bulk shape. Objects the caller may not read are left out; none left is a 404.",
    response_model=models.BulkObjects,
    response_model_exclude_none=True,
)
def objects_by_checksum(
    checksum: Annotated[str, Path(pattern=CHECKSUM, description="sha-256:<64 hex>, md5:<32 hex>, or the bare hex")],
    drs: DrsDep,
    identity: IdentityDep,
) -> dict[str, Any]:
    return drs.by_checksum(checksum, identity)


@router.get(
    "/objects/{object_id}",
    summary="Get info about a DrsObject",
    response_model=models.DrsObject,
    response_model_exclude_none=True,
)
def get_object(object_id: str, drs: DrsDep, identity: IdentityDep, expand: bool = Query(False)) -> dict[str, Any]:
    return drs.get_object(object_id, identity, expand)


@router.post(
    "/objects/{object_id}",
    summary="Get info about a DrsObject, with a passport in the body",
    openapi_extra=PASSPORT,
    response_model=models.DrsObject,
    response_model_exclude_none=True,
)
def post_object(
    object_id: str, node: NodeDep, drs: DrsDep, request: Request, body: Annotated[PostObjectBody, Body()]
) -> dict[str, Any]:
    return drs.get_object(object_id, _identity(node, request, body.passports), body.expand)


@router.options("/objects/{object_id}", summary="Authorizations of a DrsObject", response_model=models.Authorizations)
def options_object(object_id: str, drs: DrsDep) -> dict[str, Any]:
    return drs.authorizations(object_id)


@router.get(
    "/objects/{object_id}/access/{access_id}", summary="Get a URL for fetching bytes", response_model=models.AccessURL
)
def get_access(object_id: str, access_id: str, drs: DrsDep, identity: IdentityDep) -> dict[str, Any]:
    return drs.access_url(object_id, access_id, identity)


@router.post(
    "/objects/{object_id}/access/{access_id}",
    summary="Get a URL for fetching bytes, passport in body",
    openapi_extra=PASSPORT,
    response_model=models.AccessURL,
)
def post_access(
    object_id: str,
    access_id: str,
    node: NodeDep,
    drs: DrsDep,
    request: Request,
    body: Annotated[PassportsBody, Body()],
) -> dict[str, Any]:
    return drs.access_url(object_id, access_id, _identity(node, request, body.passports))


@router.post(
    "/objects",
    summary="Get info about several DrsObjects",
    openapi_extra=PASSPORT,
    response_model=models.BulkObjects,
    response_model_exclude_none=True,
)
def bulk_objects(
    node: NodeDep, drs: DrsDep, request: Request, body: Annotated[BulkObjectsBody, Body()]
) -> dict[str, Any]:
    identity = _identity(node, request, body.passports)
    return drs.bulk_objects(body.bulk_object_ids, identity, body.expand)


@router.options("/objects", summary="Authorizations of several DrsObjects", response_model=models.BulkAuthorizations)
def bulk_options(drs: DrsDep, body: Annotated[BulkIdsBody | None, Body()] = None) -> dict[str, Any]:
    # HTTP clients rarely send a body with OPTIONS; without ids there is nothing to describe.
    return drs.bulk_authorizations(body.bulk_object_ids if body else [])
