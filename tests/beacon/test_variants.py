"""Variant queries answered through the API, checked against pysam reading the same VCF."""

from __future__ import annotations

from typing import Any

import pysam
import pytest
from beacon_schemas import assert_answer, assert_valid, framework, model
from beacon_world import World
from sqlalchemy import delete

from genoshare.access.issuer import VisaIssuer
from genoshare.store.beacon_tables import BeaconGene

from support import Passports, bearer

Allele = tuple[int, str, str]


def pysam_alleles(world: World, start: int, end: int) -> dict[Allele, int]:
    """(0-based start, ref, alt) -> number of carriers, for records overlapping [start, end)."""
    found: dict[Allele, int] = {}
    with pysam.VariantFile(str(world.vcf)) as vcf:
        for record in vcf.fetch("20", start, end):
            for index, alt in enumerate(record.alts or (), start=1):
                carriers = sum(1 for s in record.samples.values() if index in (s["GT"] or ()))
                if carriers:
                    found[(record.start, record.ref, alt)] = carriers
    return found


def positions(world: World, n: int) -> list[Allele]:
    alleles = sorted(pysam_alleles(world, 0, 300_000))
    step = max(1, len(alleles) // n)
    return alleles[::step][:n]


def records_of(body: dict[str, Any], dataset: str = "cohort") -> list[dict[str, Any]]:
    return next(rs["results"] for rs in body["response"]["resultSets"] if rs["id"] == dataset)


def allele(record: dict[str, Any]) -> Allele:
    variation = record["variation"]
    return variation["location"]["interval"]["start"]["value"], variation["referenceBases"], variation["alternateBases"]


@pytest.fixture(scope="module")
def granted(issuer: VisaIssuer) -> dict[str, str]:
    return bearer(Passports(issuer).with_grant("cohort"))


def test_sequence_queries_match_pysam(world: World, granted: dict[str, str]) -> None:
    for start, ref, alt in positions(world, 12):
        params = {"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt}
        body = world.client.get("/api/g_variants", params=params, headers=granted).json()
        assert_valid(body, framework("beaconResultsetsResponse"))
        [record] = records_of(body)
        assert_valid(record, model("genomicVariations"))
        assert allele(record) == (start, ref, alt)
        assert len(record["caseLevelData"]) == pysam_alleles(world, start, start + 1)[(start, ref, alt)]


def test_range_queries_match_pysam(world: World, granted: dict[str, str]) -> None:
    for start, end in ((0, 20_000), (100_000, 150_000), (250_000, 300_000)):
        expected = pysam_alleles(world, start, end)
        body = world.client.post(
            "/api/g_variants",
            json={
                "meta": {"apiVersion": "v2.0.0"},
                "query": {
                    "requestParameters": {"referenceName": "20", "start": [start], "end": [end]},
                    "pagination": {"skip": 0, "limit": 0},
                },
            },
            headers=granted,
        ).json()
        result = next(rs for rs in body["response"]["resultSets"] if rs["id"] == "cohort")
        assert result["resultsCount"] == len(expected)
        assert {allele(r): len(r["caseLevelData"]) for r in result["results"]} == expected


def test_pagination_walks_the_same_answer(world: World, granted: dict[str, str]) -> None:
    params = {"referenceName": "20", "start": 0, "end": 30_000}
    whole = [
        allele(r)
        for r in records_of(world.client.get("/api/g_variants", params={**params, "limit": 0}, headers=granted).json())
    ]
    pages = []
    for skip in range(0, len(whole), 7):
        page = world.client.get("/api/g_variants", params={**params, "skip": skip, "limit": 7}, headers=granted).json()
        assert page["meta"]["receivedRequestSummary"]["pagination"] == {"skip": skip, "limit": 7}
        pages += [allele(r) for r in records_of(page)]
    assert pages == whole


def test_variant_type_and_length_filters(world: World, granted: dict[str, str]) -> None:
    expected = pysam_alleles(world, 0, 60_000)
    snps = {a for a in expected if len(a[1]) == len(a[2]) == 1}
    deletions = {a for a in expected if len(a[2]) < len(a[1])}
    base = {"referenceName": "20", "start": 0, "end": 60_000, "limit": 0}
    assert len(expected) < 1000  # one page holds them all
    got = records_of(world.client.get("/api/g_variants", params={**base, "variantType": "SNP"}, headers=granted).json())
    assert {allele(r) for r in got} == snps
    got = records_of(world.client.get("/api/g_variants", params={**base, "variantType": "DEL"}, headers=granted).json())
    assert {allele(r) for r in got} == deletions
    long_ones = {a for a in expected if abs(len(a[1]) - len(a[2])) >= 2}
    got = records_of(
        world.client.get("/api/g_variants", params={**base, "variantMinLength": 2}, headers=granted).json()
    )
    assert {allele(r) for r in got} == long_ones


def test_bracket_query(world: World, granted: dict[str, str]) -> None:
    expected = {
        a
        for a in pysam_alleles(world, 9_000, 21_000)
        if 10_000 <= a[0] <= 20_000 and 10_001 <= a[0] + len(a[1]) <= 20_001
    }
    params = {"referenceName": "20", "start": "10000,20000", "end": "10001,20001", "limit": 0}
    got = records_of(world.client.get("/api/g_variants", params=params, headers=granted).json())
    assert {allele(r) for r in got} == expected


def test_gene_query_is_the_gene_range(world: World, granted: dict[str, str]) -> None:
    with world.node.database.session() as session:
        session.add(
            BeaconGene(assembly_id="GRCh38", symbol="GSTEST1", gene_id="ENSG0", contig="20", start=5000, end=9000)
        )
    try:
        gene = world.client.get("/api/g_variants", params={"geneId": "GSTEST1", "limit": 0}, headers=granted).json()
        span = world.client.get(
            "/api/g_variants", params={"referenceName": "20", "start": 5000, "end": 9000, "limit": 0}, headers=granted
        ).json()
        assert [allele(r) for r in records_of(gene)] == [allele(r) for r in records_of(span)]
        assert records_of(gene)
        unknown = world.client.get("/api/g_variants", params={"geneId": "NOPE1"})
        assert unknown.status_code == 404 and "NOPE1" in unknown.json()["error"]["errorMessage"]
        # A symbol no gene has, whatever its characters (PostgreSQL refuses NUL in a text parameter).
        assert world.client.get("/api/g_variants", params={"geneId": "\x00"}).status_code == 404
    finally:
        with world.node.database.session() as session:
            session.execute(delete(BeaconGene))


def test_assembly_mismatch_is_an_error(world: World) -> None:
    params = {"referenceName": "20", "start": 0, "end": 1000}
    wrong = world.client.get("/api/g_variants", params={**params, "assemblyId": "GRCh37"})
    assert wrong.status_code == 404  # a clear error, not an empty answer; 400 is for malformed requests
    assert_valid(wrong.json(), framework("beaconErrorResponse"))
    assert "GRCh37" in wrong.json()["error"]["errorMessage"] and "GRCh38" in wrong.json()["error"]["errorMessage"]
    for name in ("GRCh38", "hg38", "GRCh38.p13"):
        assert world.client.get("/api/g_variants", params={**params, "assemblyId": name}).status_code == 200


def test_variant_cross_entity_paths(world: World, granted: dict[str, str]) -> None:
    start, ref, alt = positions(world, 3)[1]
    variant_id = f"20:{start}:{ref}:{alt}"
    carriers = pysam_alleles(world, start, start + 1)[(start, ref, alt)]
    [one] = records_of(world.client.get(f"/api/g_variants/{variant_id}", headers=granted).json())
    assert one["variantInternalId"] == variant_id
    people = world.client.get(f"/api/g_variants/{variant_id}/individuals", params={"limit": 0}, headers=granted).json()
    assert_valid(people, framework("beaconResultsetsResponse"))
    assert len(records_of(people)) == carriers
    samples = world.client.get(f"/api/g_variants/{variant_id}/biosamples", params={"limit": 0}, headers=granted).json()
    assert len(records_of(samples)) == carriers
    person = records_of(people)[0]["id"]
    mine = world.client.get(
        f"/api/individuals/{person}/g_variants",
        params={"referenceName": "20", "start": start, "alternateBases": alt},
        headers=granted,
    ).json()
    assert [r["variantInternalId"] for r in records_of(mine)] == [variant_id]


def test_non_filtered_variant_queries(world: World, granted: dict[str, str]) -> None:
    every = pysam_alleles(world, 0, 300_000)
    counted = world.client.get("/api/g_variants", params={"requestedGranularity": "count"}, headers=granted).json()
    assert_answer(counted, "g_variants")  # "opencounts" answers yes/no only: a boolean response with count sets
    assert next(rs for rs in counted["response"]["resultSets"] if rs["id"] == "cohort")["resultsCount"] == len(every)
    page = world.client.get("/api/g_variants", params={"skip": 3, "limit": 5}, headers=granted).json()
    shown = [allele(r) for r in records_of(page)]
    assert len(shown) == 5 and set(shown) <= every.keys() and shown == sorted(shown, key=lambda a: a[0])
    configuration = world.client.get("/api/configuration").json()["response"]["entryTypes"]
    assert configuration["genomicVariation"]["nonFilteredQueriesAllowed"] is True
