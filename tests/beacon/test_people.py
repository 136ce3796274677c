"""Individuals, biosamples, runs, analyses, cohorts and datasets: filters, granularity, consent withdrawal."""

from __future__ import annotations

import csv
import time
from typing import Any

import pytest
from beacon_schemas import assert_valid, framework, model
from beacon_world import World
from sqlalchemy import update

from genoshare.access.issuer import VisaIssuer
from genoshare.store.models import Participant

from support import Passports, bearer


@pytest.fixture(scope="module")
def table(world: World) -> list[dict[str, str]]:
    with world.individuals.open() as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


@pytest.fixture(scope="module")
def headers(issuer: VisaIssuer) -> dict[str, dict[str, str]]:
    passports = Passports(issuer)
    return {
        "anonymous": {},
        "researcher": bearer(passports.anonymous_researcher()),
        "granted": bearer(passports.with_grant("cohort")),
    }


def result_set(body: dict[str, Any], dataset: str) -> dict[str, Any]:
    return next(rs for rs in body["response"]["resultSets"] if rs["id"] == dataset)


def count(world: World, headers: dict[str, str], **params: Any) -> int:
    body = world.client.get("/api/individuals", params={"requestedGranularity": "count", **params}, headers=headers)
    return int(result_set(body.json(), "cohort")["resultsCount"])


def test_granularity_follows_the_access_decision(world: World, headers: dict[str, dict[str, str]]) -> None:
    anonymous = world.client.get("/api/individuals").json()
    assert_valid(anonymous, framework("beaconResultsetsResponse"))
    assert anonymous["meta"]["returnedGranularity"] == "record"  # "packets" is public
    by_id = {rs["id"]: rs["info"]["returnedGranularity"] for rs in anonymous["response"]["resultSets"]}
    assert by_id == {"packets": "record", "opencounts": "count"}  # "cohort" answers yes/no only
    assert anonymous["responseSummary"]["exists"] is True
    only_cohort = world.client.get("/api/datasets/cohort/individuals").json()
    assert_valid(only_cohort, framework("beaconBooleanResponse"))
    assert only_cohort["meta"]["returnedGranularity"] == "boolean" and "response" not in only_cohort

    researcher = world.client.get("/api/individuals", headers=headers["researcher"]).json()
    assert_valid(researcher, framework("beaconCountResponse"))
    assert researcher["meta"]["returnedGranularity"] == "record"  # the public dataset
    cohort = result_set(researcher, "cohort")
    assert cohort["resultsCount"] == 40 and cohort["results"] == []
    assert cohort["info"]["returnedGranularity"] == "count"

    granted = world.client.get("/api/individuals", params={"limit": 100}, headers=headers["granted"]).json()
    assert_valid(granted, framework("beaconResultsetsResponse"))
    records = result_set(granted, "cohort")["results"]
    assert len(records) == 40
    for record in records[:5]:
        assert_valid(record, model("individuals"))

    asked_for_less = world.client.get(
        "/api/individuals", params={"requestedGranularity": "boolean"}, headers=headers["granted"]
    ).json()
    assert asked_for_less["meta"]["returnedGranularity"] == "boolean"
    assert "response" not in asked_for_less


def test_anonymous_counts_are_rounded_and_small_ones_suppressed(world: World, table: list[dict[str, str]]) -> None:
    everyone = result_set(world.client.get("/api/individuals").json(), "opencounts")
    assert everyone["resultsCount"] == 40 and everyone["info"]["returnedGranularity"] == "count"
    few = sum("MONDO:0005148" in row["diseases"] for row in table)
    assert 0 < few < 10
    body = world.client.get("/api/individuals", params={"filters": "MONDO:0005148"}).json()
    assert "opencounts" not in {rs["id"] for rs in body.get("response", {}).get("resultSets", [])}
    assert body["responseSummary"]["exists"] is True


def test_ontology_filters_include_descendants(
    world: World, headers: dict[str, dict[str, str]], table: list[dict[str, str]]
) -> None:
    diabetic = {
        world.pseudonyms[r["individual_id"]]
        for r in table
        if {"MONDO:0005148", "MONDO:0005147"} & set(r["diseases"].split(";"))
    }
    body = world.client.get(
        "/api/individuals", params={"filters": "MONDO:0005015", "limit": 100}, headers=headers["granted"]
    ).json()
    assert {r["id"] for r in result_set(body, "cohort")["results"]} == diabetic
    exact = {
        "meta": {"apiVersion": "v2.0.0"},
        "query": {
            "filters": [{"id": "MONDO:0005015", "includeDescendantTerms": False}],
            "requestedGranularity": "count",
            "includeResultsetResponses": "ALL",
        },
    }
    body = world.client.post("/api/individuals", json=exact, headers=headers["granted"]).json()
    assert result_set(body, "cohort")["resultsCount"] == 0  # nobody is annotated with the parent term itself
    hpo = sum("HP:0001250" in r["phenotypic_features"] for r in table)
    assert count(world, headers["researcher"], filters="HP:0012638") >= hpo  # abnormal nervous system physiology


def test_alphanumeric_filters(world: World, headers: dict[str, dict[str, str]], table: list[dict[str, str]]) -> None:
    def query(*filters: dict[str, str]) -> int:
        body = {"meta": {"apiVersion": "v2.0.0"}, "query": {"filters": list(filters), "requestedGranularity": "count"}}
        response = world.client.post("/api/individuals", json=body, headers=headers["researcher"]).json()
        return int(result_set(response, "cohort")["resultsCount"])

    females = sum(r["sex"] == "NCIT:C16576" for r in table)
    older = sum(int(r["age"][1:-1]) >= 60 for r in table)
    assert query({"id": "sex", "operator": "=", "value": "female"}) == females
    assert query({"id": "age", "operator": ">=", "value": "P60Y"}) == older
    both = sum(r["sex"] == "NCIT:C16576" and int(r["age"][1:-1]) >= 60 for r in table)
    assert (
        query({"id": "sex", "operator": "=", "value": "NCIT:C16576"}, {"id": "age", "operator": ">=", "value": "60"})
        == both
    )
    bad = world.client.post(
        "/api/individuals",
        json={
            "meta": {"apiVersion": "v2.0.0"},
            "query": {"filters": [{"id": "height", "operator": ">", "value": "2"}]},
        },
    )
    assert bad.status_code == 400


def test_withdrawal_removes_a_person_within_a_second(world: World, headers: dict[str, dict[str, str]]) -> None:
    pseudonym = world.pseudonyms["GS00003"]
    before = count(world, headers["researcher"])
    set_status(world, pseudonym, "withdrawn")
    try:
        # No invalidate(): another process's write must show everywhere within a second.
        started = time.monotonic()
        while not gone_everywhere(world, headers, pseudonym, before):
            assert time.monotonic() - started < 1.0, "the withdrawal did not reach every Beacon answer within 1 s"
            time.sleep(0.05)
    finally:
        set_status(world, pseudonym, "active")
        world.client.app.state.services.beacon.invalidate("cohort")  # type: ignore[attr-defined]
    assert count(world, headers["researcher"]) == before


def gone_everywhere(world: World, headers: dict[str, dict[str, str]], pseudonym: str, before: int) -> bool:
    """Counts, record lists, the person's own record and their variants all leave the person out."""
    granted = headers["granted"]
    body = world.client.get("/api/individuals", params={"limit": 100}, headers=granted).json()
    one = world.client.get(f"/api/individuals/{pseudonym}", headers=granted).json()
    variants = world.client.get(
        f"/api/individuals/{pseudonym}/g_variants",
        params={"referenceName": "20", "start": 0, "end": 300_000},
        headers=granted,
    ).json()
    return (
        count(world, headers["researcher"]) == before - 1
        and pseudonym not in {r["id"] for r in result_set(body, "cohort")["results"]}
        and one["responseSummary"]["exists"] is False
        and variants["responseSummary"]["exists"] is False
    )


def set_status(world: World, pseudonym: str, status: str) -> None:
    with world.node.database.session() as session:
        session.execute(
            update(Participant)
            .where(Participant.dataset_id == "cohort", Participant.pseudonym == pseudonym)
            .values(consent_status=status)
        )


def test_phenopackets_become_individuals_and_biosamples(world: World) -> None:
    body = world.client.get("/api/datasets/packets/individuals").json()
    people = result_set(body, "packets")["results"]
    assert len(people) == 2
    female = next(p for p in people if p["sex"]["id"] == "NCIT:C16576")
    assert female["diseases"][0]["diseaseCode"]["id"] == "MONDO:0005148"
    samples = world.client.get(f"/api/individuals/{female['id']}/biosamples").json()
    [sample] = result_set(samples, "packets")["results"]
    assert_valid(sample, model("biosamples"))
    assert sample["sampleOriginType"]["id"] == "UBERON:0000178"
    assert sample["id"] == f"{female['id']}-S1"


@pytest.mark.parametrize(("path", "entity"), [("runs", "runs"), ("analyses", "analyses"), ("biosamples", "biosamples")])
def test_runs_analyses_biosamples(world: World, path: str, entity: str) -> None:
    body = world.client.get(f"/api/datasets/packets/{path}" if path == "biosamples" else f"/api/{path}").json()
    assert_valid(body, framework("beaconResultsetsResponse"))
    records = result_set(body, "packets")["results"]
    assert records
    for record in records:
        assert_valid(record, model(entity))
    first = records[0]["id"]
    [again] = result_set(world.client.get(f"/api/{path}/{first}").json(), "packets")["results"]
    assert again == records[0]


def test_cross_entity_biosample_run_analysis(world: World) -> None:
    [sample] = result_set(world.client.get("/api/biosamples", params={"limit": 1}).json(), "packets")["results"]
    runs = result_set(world.client.get(f"/api/biosamples/{sample['id']}/runs").json(), "packets")["results"]
    analyses = result_set(world.client.get(f"/api/runs/{runs[0]['id']}/analyses").json(), "packets")["results"]
    assert analyses[0]["biosampleId"] == sample["id"] == runs[0]["biosampleId"]


@pytest.mark.parametrize(("path", "entity"), [("datasets", "datasets"), ("cohorts", "cohorts")])
def test_collections(world: World, headers: dict[str, dict[str, str]], path: str, entity: str) -> None:
    body = world.client.get(f"/api/{path}", headers=headers["researcher"]).json()
    assert_valid(body, framework("beaconCollectionsResponse"))
    assert {c["id"] for c in body["response"]["collections"]} == {"cohort", "opencounts", "packets"}
    for record in body["response"]["collections"]:
        assert_valid(record, model(entity))
    one = world.client.get(f"/api/{path}/cohort").json()
    assert [c["id"] for c in one["response"]["collections"]] == ["cohort"]
    members = world.client.get(f"/api/{path}/cohort/individuals", headers=headers["researcher"]).json()
    assert {rs["id"] for rs in members["response"]["resultSets"]} == {"cohort"}


def test_cohort_size_needs_counts(world: World, headers: dict[str, dict[str, str]]) -> None:
    anonymous = {c["id"]: c for c in world.client.get("/api/cohorts").json()["response"]["collections"]}
    assert "cohortSize" not in anonymous["cohort"]
    assert anonymous["opencounts"]["cohortSize"] == 40
    researcher = world.client.get("/api/cohorts", headers=headers["researcher"]).json()["response"]["collections"]
    assert {c["id"]: c.get("cohortSize") for c in researcher}["cohort"] == 40


def test_a_withdrawn_person_never_appears_to_carry_variants(world: World, headers: dict[str, dict[str, str]]) -> None:
    """Not even through randomised response, which flips rare "no" answers for registered callers."""
    pseudonym = world.pseudonyms["GS00004"]
    set_status(world, pseudonym, "withdrawn")
    world.client.app.state.services.beacon.invalidate("cohort")  # type: ignore[attr-defined]
    try:
        for window in range(20):  # 20 distinct questions: each a fresh coin for the guard
            params = {"referenceName": "20", "start": window * 10_000, "end": (window + 1) * 10_000}
            for caller in ("researcher", "granted"):
                body = world.client.get(
                    f"/api/individuals/{pseudonym}/g_variants", params=params, headers=headers[caller]
                ).json()
                assert body["responseSummary"]["exists"] is False, (caller, params)
    finally:
        set_status(world, pseudonym, "active")
        world.client.app.state.services.beacon.invalidate("cohort")  # type: ignore[attr-defined]
