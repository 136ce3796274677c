"""One Beacon request, whether it came as GET query parameters or a POST ``beaconRequestBody``.

The request is validated once, by the pydantic models of ``beacon.openapi`` (the ones FastAPI checks and the
OpenAPI publishes); ``from_query`` and ``from_body`` take those validated models and only turn them into a
``BeaconRequest``: lists out of GET's comma-separated strings, filters into ``Filter`` terms, the node's page
limits and the defaults below.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from genoshare.access.granularity import Granularity
from genoshare.beacon.errors import BeaconBadRequest
from genoshare.beacon.filters import Filter, parse_filters
from genoshare.beacon.openapi import BeaconQuery, BeaconRequestBody, QueryParameters

API_VERSION = "v2.0.0"
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
GRANULARITIES = {"boolean": Granularity.BOOLEAN, "count": Granularity.COUNT, "record": Granularity.RECORD}
#: GET parameters that are not g_variant request parameters.
_CONTROL = {"skip", "limit", "requestedGranularity", "filters", "includeResultsetResponses", "testMode"}
#: GET sends these lists comma-separated (``start=100,200``); the body sends JSON lists.
_INTEGER_LISTS = {"start", "end"}


@dataclass(frozen=True)
class BeaconRequest:
    parameters: dict[str, Any] = field(default_factory=dict)
    filters: list[Filter] = field(default_factory=list)
    raw_filters: list[Any] = field(default_factory=list)
    skip: int = 0
    limit: int = DEFAULT_LIMIT
    #: A client that names no granularity asks for the most it may have; the access policy caps it.
    granularity: Granularity = Granularity.RECORD
    include: str = "HIT"
    test_mode: bool = False

    def summary(self) -> dict[str, Any]:
        """``receivedRequestSummary``: the request as this node understood it."""
        summary: dict[str, Any] = {
            "apiVersion": API_VERSION,
            "requestedSchemas": [],
            "pagination": {"skip": self.skip, "limit": self.limit},
            "requestedGranularity": self.granularity.beacon,
            "includeResultsetResponses": self.include,
            "testMode": self.test_mode,
        }
        if self.raw_filters:
            summary["filters"] = [f if isinstance(f, str) else str(f.get("id")) for f in self.raw_filters]
        if self.parameters:
            # requestParameters.json wants object values: the parameters are grouped under their entity.
            summary["requestParameters"] = {"g_variant": dict(self.parameters)}
        return summary


def page(skip: int | None, limit: int | None) -> tuple[int, int]:
    """``skip`` and ``limit`` as served: a limit of 0 (or above the node's ceiling) is the ceiling."""
    limit = DEFAULT_LIMIT if limit is None else limit
    return skip or 0, MAX_LIMIT if limit == 0 else min(limit, MAX_LIMIT)


def _parameters(sent: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: [int(item) for item in value.split(",")] if name in _INTEGER_LISTS and isinstance(value, str) else value
        for name, value in sent.items()
    }


def from_query(query: QueryParameters) -> BeaconRequest:
    """GET: request parameters and controls share the query string; filters are comma-separated CURIEs."""
    sent = query.document()
    raw_filters = [term.strip() for term in (query.filters or "").split(",") if term.strip()]
    skip, limit = page(query.skip, query.limit)
    return BeaconRequest(
        parameters=_parameters({name: value for name, value in sent.items() if name not in _CONTROL}),
        filters=parse_filters(raw_filters),
        raw_filters=raw_filters,
        skip=skip,
        limit=limit,
        granularity=_granularity(query.requestedGranularity),
        include=query.includeResultsetResponses or BeaconRequest.include,
        test_mode=query.testMode == "true",
    )


def from_body(body: BeaconRequestBody) -> BeaconRequest:
    """POST: a ``beaconRequestBody``; only ``meta.apiVersion`` is required by the spec."""
    query = body.query or BeaconQuery()
    variant = query.requestParameters
    raw_filters = [
        term if isinstance(term, str) else term.model_dump(exclude_none=True) for term in query.filters or []
    ]
    pagination = query.pagination
    skip, limit = page(pagination.skip, pagination.limit) if pagination else page(None, None)
    return BeaconRequest(
        parameters=variant.model_dump(exclude={"schema_"}, exclude_none=True) if variant else {},
        filters=parse_filters(raw_filters),
        raw_filters=raw_filters,
        skip=skip,
        limit=limit,
        granularity=_granularity(query.requestedGranularity),
        include=query.includeResultsetResponses or BeaconRequest.include,
        test_mode=bool(query.testMode),
    )


def parse_query(query: Mapping[str, str]) -> BeaconRequest:
    """A query string not validated yet (outside the API's routes): validated as the GET routes validate it."""
    try:
        return from_query(QueryParameters.model_validate(dict(query)))
    except ValidationError as error:
        problem = error.errors(include_url=False)[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise BeaconBadRequest(f"{where}: {problem['msg']}" if where else problem["msg"]) from None


def _granularity(value: str | None) -> Granularity:
    return BeaconRequest.granularity if value is None else GRANULARITIES[value]
