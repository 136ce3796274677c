"""One Beacon request, whether it came as GET query parameters or a POST ``beaconRequestBody``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from genoshare.access.granularity import Granularity
from genoshare.beacon.errors import BeaconBadRequest
from genoshare.beacon.filters import Filter, parse_filters

API_VERSION = "v2.0.0"
DEFAULT_LIMIT = 10
MAX_LIMIT = 1000
GRANULARITIES = {"boolean": Granularity.BOOLEAN, "count": Granularity.COUNT, "record": Granularity.RECORD}
#: GET parameters that are not g_variant request parameters.
_CONTROL = {"skip", "limit", "requestedGranularity", "filters", "includeResultsetResponses", "testMode"}
_INTEGER_LISTS = {"start", "end"}
_INTEGERS = {"variantMinLength", "variantMaxLength"}
INCLUDE = ("ALL", "HIT", "MISS", "NONE")


@dataclass(frozen=True)
class BeaconRequest:
    parameters: dict[str, Any] = field(default_factory=dict)
    filters: list[Filter] = field(default_factory=list)
    raw_filters: list[Any] = field(default_factory=list)
    skip: int = 0
    limit: int = DEFAULT_LIMIT
    granularity: Granularity = Granularity.BOOLEAN
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


def _integer(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise BeaconBadRequest(f"{name} must be an integer")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BeaconBadRequest(f"{name} must be an integer, not {value!r}") from None


def _pagination(skip: Any, limit: Any) -> tuple[int, int]:
    skip_n = _integer("skip", skip) if skip is not None else 0
    limit_n = _integer("limit", limit) if limit is not None else DEFAULT_LIMIT
    if skip_n < 0 or limit_n < 0:
        raise BeaconBadRequest("skip and limit must not be negative")
    return skip_n, MAX_LIMIT if limit_n == 0 else min(limit_n, MAX_LIMIT)


def _granularity(value: Any) -> Granularity:
    if value is None:
        return Granularity.RECORD
    if value not in GRANULARITIES:
        raise BeaconBadRequest(f"requestedGranularity must be boolean, count or record, not {value!r}")
    return GRANULARITIES[value]


def _include(value: Any) -> str:
    if value is None:
        return "HIT"
    if value not in INCLUDE:
        raise BeaconBadRequest(f"includeResultsetResponses must be one of {', '.join(INCLUDE)}")
    return str(value)


def _parameters(raw: Mapping[str, Any]) -> dict[str, Any]:
    parameters: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "$schema":
            continue
        if name in _INTEGER_LISTS:
            items = value if isinstance(value, list) else str(value).split(",")
            parameters[name] = [_integer(name, item) for item in items]
        elif name in _INTEGERS:
            parameters[name] = _integer(name, value)
        else:
            parameters[name] = value if isinstance(value, str) else str(value)
    return parameters


def from_query(query: Mapping[str, Any]) -> BeaconRequest:
    """GET: request parameters and controls share the query string; filters are comma-separated CURIEs."""
    skip, limit = _pagination(query.get("skip"), query.get("limit"))
    raw_filters = [term.strip() for term in str(query.get("filters", "")).split(",") if term.strip()]
    return BeaconRequest(
        parameters=_parameters({k: v for k, v in query.items() if k not in _CONTROL}),
        filters=parse_filters(raw_filters),
        raw_filters=list(raw_filters),
        skip=skip,
        limit=limit,
        granularity=_granularity(query.get("requestedGranularity")),
        include=_include(query.get("includeResultsetResponses")),
        test_mode=str(query.get("testMode", "false")).lower() == "true",
    )


def from_body(body: Any) -> BeaconRequest:
    """POST: a ``beaconRequestBody``; only ``meta.apiVersion`` is required by the spec."""
    if not isinstance(body, Mapping):
        raise BeaconBadRequest("the request body must be a JSON object (beaconRequestBody)")
    meta = body.get("meta")
    if not isinstance(meta, Mapping) or not isinstance(meta.get("apiVersion"), str):
        raise BeaconBadRequest("beaconRequestBody needs meta.apiVersion")
    query = body.get("query") or {}
    if not isinstance(query, Mapping):
        raise BeaconBadRequest("query must be an object")
    pagination = query.get("pagination") or {}
    raw_filters = query.get("filters") or []
    parameters = query.get("requestParameters") or {}
    if not isinstance(pagination, Mapping) or not isinstance(raw_filters, list) or not isinstance(parameters, Mapping):
        raise BeaconBadRequest("query.pagination and query.requestParameters must be objects, query.filters a list")
    skip, limit = _pagination(pagination.get("skip"), pagination.get("limit"))
    return BeaconRequest(
        parameters=_parameters(parameters),
        filters=parse_filters(raw_filters),
        raw_filters=list(raw_filters),
        skip=skip,
        limit=limit,
        granularity=_granularity(query.get("requestedGranularity")),
        include=_include(query.get("includeResultsetResponses")),
        test_mode=bool(query.get("testMode", False)),
    )
