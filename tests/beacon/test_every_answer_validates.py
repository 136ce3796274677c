"""Every Beacon endpoint, entry type, granularity, caller and method, validated by the spec's own schemas.

The routes are read from the application, not listed here, so a route added later is walked too. Errors
(the generic 404 included) must be ``beaconErrorResponse`` bodies naming this Beacon.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from beacon_schemas import assert_answer, assert_valid, framework
from beacon_world import World
from fastapi.routing import APIRoute

from genoshare.access.issuer import VisaIssuer
from genoshare.api.beacon import router

from support import Passports, bearer

GRANULARITIES = ("boolean", "count", "record")
INFORMATIONAL = {
    "/api": "beaconInfoResponse",
    "/api/info": "beaconInfoResponse",
    "/api/service-info": "ga4gh-service-info-1-0-0-schema",
    "/api/configuration": "beaconConfigurationResponse",
    "/api/map": "beaconMapResponse",
    "/api/entry_types": "beaconEntryTypesResponse",
}


@pytest.fixture(scope="module")
def callers(issuer: VisaIssuer) -> dict[str, dict[str, str]]:
    """Own subjects: the privacy budgets these queries spend are nobody else's."""
    return {
        "anonymous": {},
        "registered": bearer(Passports(issuer, subject="schema-walker").anonymous_researcher()),
        "granted": bearer(Passports(issuer, subject="schema-walker-2").with_grant("cohort")),
    }


@pytest.fixture(scope="module")
def ids(world: World, callers: dict[str, dict[str, str]]) -> dict[str, str]:
    """A real id for each ``{id}`` path segment, read through the API by a caller who sees records."""
    found = {"datasets": "cohort", "cohorts": "cohort"}
    params: dict[str, Any] = {"requestedGranularity": "record", "limit": 1}
    for entry, key in (
        ("individuals", "id"),
        ("biosamples", "id"),
        ("runs", "id"),
        ("analyses", "id"),
        ("g_variants", "variantInternalId"),
    ):
        body = world.client.get(f"/api/{entry}", params=params, headers=callers["granted"]).json()
        [record] = next(rs for rs in body["response"]["resultSets"] if rs["id"] == "cohort")["results"]
        found[entry] = record[key]
    return found


def entry_paths(ids: dict[str, str]) -> dict[str, tuple[str, set[str]]]:
    """Every Beacon route answering entries: path with ids filled in -> (entry answered, methods)."""
    paths: dict[str, tuple[str, set[str]]] = {}
    for route in router.routes:
        if not isinstance(route, APIRoute) or route.path in INFORMATIONAL:
            continue
        parts = route.path.split("/")[2:]
        path = route.path.replace("{id}", ids.get(parts[0], ""))
        entry = parts[0] if parts[-1] == "{id}" else parts[-1]
        paths.setdefault(path, (entry, set()))[1].update(route.methods or ())
    return paths


def test_informational_endpoints(world: World) -> None:
    for path, schema in INFORMATIONAL.items():
        response = world.client.get(path)
        assert response.status_code == 200, path
        assert_valid(response.json(), framework(schema))


def test_every_entry_route_granularity_and_caller(
    world: World, callers: dict[str, dict[str, str]], ids: dict[str, str]
) -> None:
    walked = 0
    for path, (entry, methods) in entry_paths(ids).items():
        if entry == "filtering_terms":
            for headers in callers.values():
                response = world.client.get(path, headers=headers)
                assert response.status_code == 200, path
                assert_valid(response.json(), framework("beaconFilteringTermsResponse"))
            continue
        for (name, headers), granularity in ((c, g) for c in callers.items() for g in GRANULARITIES):
            answers = []
            if "GET" in methods:
                answers.append(world.client.get(path, params={"requestedGranularity": granularity}, headers=headers))
            if "POST" in methods:
                body = {"meta": {"apiVersion": "v2.0.0"}, "query": {"requestedGranularity": granularity}}
                answers.append(world.client.post(path, json=body, headers=headers))
            for response in answers:
                where = f"{response.request.method} {path} {granularity} as {name}"
                assert response.status_code == 200, f"{where}: {response.text[:300]}"
                document = response.json()
                assert_answer(document, entry)
                assert document["meta"]["beaconId"] == world.node.settings.node_id
                # Never more than asked for, and never a level above what was asked named as given.
                order = GRANULARITIES.index
                if entry not in ("datasets", "cohorts"):
                    assert order(document["meta"]["returnedGranularity"]) <= order(granularity), where
                walked += 1
    assert walked > 400  # every route, both methods, three callers, three granularities


def test_answers_about_alleles_validate_for_every_caller(
    world: World, callers: dict[str, dict[str, str]], ids: dict[str, str]
) -> None:
    """Entries narrowed by a variant go through the privacy guard (randomised, withheld): still valid."""
    contig, start, ref, alt = ids["g_variants"].split(":")
    params = {"referenceName": contig, "start": start, "referenceBases": ref, "alternateBases": alt}
    for entry in ("g_variants", "individuals", "biosamples", "runs", "analyses"):
        for (name, headers), granularity in ((c, g) for c in callers.items() for g in GRANULARITIES):
            for include in ("HIT", "ALL"):
                query = {**params, "requestedGranularity": granularity, "includeResultsetResponses": include}
                response = world.client.get(f"/api/{entry}", params=query, headers=headers)
                assert response.status_code == 200, f"{entry} {granularity} {name}: {response.text[:300]}"
                assert_answer(response.json(), entry)


def test_dataset_date_times_carry_their_zone(world: World) -> None:
    for method in ("GET", "POST"):
        body = world.client.request(method, "/api/datasets", json={"meta": {"apiVersion": "v2.0.0"}, "query": {}})
        for record in body.json()["response"]["collections"]:
            for field in ("createDateTime", "updateDateTime"):
                moment = dt.datetime.fromisoformat(record[field])
                assert moment.utcoffset() is not None, record[field]
                assert abs(dt.datetime.now(dt.UTC) - moment) < dt.timedelta(days=1)


ERRORS: tuple[tuple[str, str, dict[str, Any] | None, int], ...] = (
    ("GET", "/api/nonexistent", None, 404),
    ("POST", "/api/nonexistent/deeper", {}, 404),
    ("GET", "/api/g_variants/not-a-variant", None, 404),
    ("GET", "/api/g_variants?referenceName=20&start=1&alternateBases=A&assemblyId=GRCh99", None, 404),
    ("GET", "/api/g_variants?geneId=NOSUCHGENE", None, 404),
    ("GET", "/api/individuals?skip=minus", None, 400),
    ("GET", "/api/individuals?requestedGranularity=everything", None, 400),
    ("POST", "/api/individuals", {"query": {"requestedGranularity": 7}}, 400),
    ("POST", "/api/info", {}, 405),
    ("DELETE", "/api/individuals", None, 405),
)


@pytest.mark.parametrize(("method", "path", "body", "status"), ERRORS)
def test_error_bodies_are_beacon_error_responses(
    world: World, method: str, path: str, body: dict[str, Any] | None, status: int
) -> None:
    response = world.client.request(method, path, json=body)
    assert response.status_code == status, response.text
    document = response.json()
    assert_valid(document, framework("beaconErrorResponse"))
    assert document["meta"]["beaconId"] == world.node.settings.node_id
    assert document["error"]["errorCode"] == status
    assert document["error"]["errorMessage"]
    if status == 405:  # RFC 9110: a 405 names the methods the path is served with
        assert "GET" in response.headers["Allow"].split(", "), response.headers


def test_a_bad_passport_gets_a_beacon_error_response(world: World) -> None:
    response = world.client.get("/api/individuals", headers=bearer("not-a-jwt"))
    assert response.status_code == 401
    assert_valid(response.json(), framework("beaconErrorResponse"))
    assert response.json()["meta"]["beaconId"] == world.node.settings.node_id
