"""A Beacon request is validated once (by the published models) and means the same as GET or as POST."""

from __future__ import annotations

import pytest
from beacon_world import World

from genoshare.access.granularity import Granularity
from genoshare.beacon.errors import BeaconBadRequest
from genoshare.beacon.openapi import BeaconRequestBody, QueryParameters
from genoshare.beacon.request import BeaconRequest, from_body, from_query, parse_query


def test_get_and_post_of_one_query_are_understood_alike(world: World) -> None:
    get = world.client.get(
        "/api/individuals",
        params={"filters": "MONDO:0005015,HP:0012638", "skip": "2", "limit": "5", "includeResultsetResponses": "ALL"},
    )
    post = world.client.post(
        "/api/individuals",
        json={
            "meta": {"apiVersion": "v2.0.0"},
            "query": {
                "filters": [{"id": "MONDO:0005015"}, "HP:0012638"],
                "pagination": {"skip": 2, "limit": 5},
                "includeResultsetResponses": "ALL",
            },
        },
    )
    assert get.status_code == post.status_code == 200, (get.text, post.text)
    asked, posted = get.json()["meta"]["receivedRequestSummary"], post.json()["meta"]["receivedRequestSummary"]
    assert asked == posted
    assert asked["pagination"] == {"skip": 2, "limit": 5}
    assert asked["filters"] == ["MONDO:0005015", "HP:0012638"]


def test_variant_parameters_mean_the_same_as_get_and_as_post() -> None:
    asked = from_query(QueryParameters.model_validate({"referenceName": "20", "start": "100,200", "end": "300"}))
    posted = from_body(
        BeaconRequestBody.model_validate(
            {
                "meta": {"apiVersion": "v2.0.0"},
                "query": {"requestParameters": {"referenceName": "20", "start": [100, 200], "end": [300]}},
            }
        )
    )
    assert asked.parameters == posted.parameters == {"referenceName": "20", "start": [100, 200], "end": [300]}


def test_a_request_naming_no_granularity_gets_the_one_default() -> None:
    # One default, wherever the request comes from: built in code, a GET, a POST (before, built ones were boolean).
    asked = from_query(QueryParameters())
    posted = from_body(BeaconRequestBody.model_validate({"meta": {"apiVersion": "v2.0.0"}}))
    assert BeaconRequest().granularity == asked.granularity == posted.granularity == Granularity.RECORD


def test_a_limit_of_zero_is_the_ceiling_and_none_is_the_default() -> None:
    assert from_query(QueryParameters(limit=0)).limit == from_query(QueryParameters(limit=10**6)).limit == 1000
    assert from_query(QueryParameters()).limit == BeaconRequest().limit == 10


def test_a_query_string_outside_the_routes_is_refused_in_one_line() -> None:
    with pytest.raises(BeaconBadRequest, match=r"^limit: .*integer") as refused:
        parse_query({"limit": "many"})
    assert "\n" not in refused.value.message
