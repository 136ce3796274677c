"""The framework endpoints, validated against the local Beacon v2 framework schemas."""

from __future__ import annotations

import pytest
from beacon_schemas import assert_valid, framework
from beacon_world import World


@pytest.mark.parametrize(
    ("path", "schema"),
    [
        ("/api", "beaconInfoResponse"),
        ("/api/info", "beaconInfoResponse"),
        ("/api/service-info", "ga4gh-service-info-1-0-0-schema"),
        ("/api/configuration", "beaconConfigurationResponse"),
        ("/api/map", "beaconMapResponse"),
        ("/api/entry_types", "beaconEntryTypesResponse"),
        ("/api/filtering_terms", "beaconFilteringTermsResponse"),
        ("/api/individuals/filtering_terms", "beaconFilteringTermsResponse"),
        ("/api/datasets/cohort/filtering_terms", "beaconFilteringTermsResponse"),
        ("/api/cohorts/cohort/filtering_terms", "beaconFilteringTermsResponse"),
    ],
)
def test_framework_endpoint_validates(world: World, path: str, schema: str) -> None:
    response = world.client.get(path)
    assert response.status_code == 200, response.text
    assert_valid(response.json(), framework(schema))


def test_map_lists_every_served_path(world: World) -> None:
    served = set(world.client.get("/openapi.json").json()["paths"])
    sets = world.client.get("/api/map").json()["response"]["endpointSets"]
    for entry in sets.values():
        for url in [entry["rootUrl"], entry["singleEntryUrl"], *(e["url"] for e in entry["endpoints"].values())]:
            assert url.removeprefix("http://testserver") in served


def test_filtering_terms_list_data_terms_and_fields(world: World) -> None:
    terms = {t["id"]: t for t in world.client.get("/api/filtering_terms").json()["response"]["filteringTerms"]}
    assert terms["MONDO:0005148"]["label"] == "type 2 diabetes mellitus"
    assert {"sex", "age", "NCIT:C16576"} <= terms.keys()
    assert terms["age"]["type"] == "alphanumeric"


def test_errors_are_beacon_error_responses(world: World) -> None:
    response = world.client.get("/api/g_variants", params={"referenceName": "20", "start": "one"})
    assert response.status_code == 400
    assert_valid(response.json(), framework("beaconErrorResponse"))
    assert response.json()["meta"]["beaconId"] == world.node.settings.node_id
    typo = world.client.get("/api/individuals", params={"requestedGranularity": "count", "limt": "5"})
    assert typo.status_code == 400 and "limt" in typo.json()["error"]["errorMessage"]
    negative = world.client.get("/api/individuals", params={"skip": "-1"})
    assert negative.status_code == 400 and "skip" in negative.json()["error"]["errorMessage"]
    bad_token = world.client.get("/api/individuals", headers={"Authorization": "Bearer not-a-jwt"})
    assert bad_token.status_code == 401
    assert_valid(bad_token.json(), framework("beaconErrorResponse"))
