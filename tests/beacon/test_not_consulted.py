"""Issue 13: a Beacon answer says which datasets were not consulted, why, and what would include them.

An anonymous caller used to get ``exists: false`` for a variant a controlled dataset holds, with no hint that
the dataset was never asked; a registered caller got ``exists: true, numTotalResults: 0``.
"""

from __future__ import annotations

import re
from typing import Any

import pysam
from beacon_schemas import assert_answer
from beacon_world import World

from genoshare.access.issuer import VisaIssuer

from support import REPO, Passports, bearer

Allele = tuple[int, str, str]


def alleles_of(world: World) -> dict[Allele, int]:
    with pysam.VariantFile(str(world.vcf)) as vcf:
        return {
            (record.start, record.ref, alt): sum(
                (s["GT"] or ()).count(index) for s in record.samples.values() if s["GT"]
            )
            for record in vcf
            for index, alt in enumerate(record.alts or (), start=1)
        }


def ask(world: World, allele: Allele, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    start, ref, alt = allele
    params = {"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt, **extra}
    response = world.client.get("/api/g_variants", params=params, headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert_answer(body, "g_variants")
    return body


def notes(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {note["id"]: note for note in body["info"]["datasets"]}


def test_anonymous_answers_name_the_datasets_not_consulted_the_same_whatever_the_variant(world: World) -> None:
    alleles = alleles_of(world)
    held = max(alleles, key=lambda a: alleles[a])  # carried by many in "cohort" and "opencounts"
    absent = (held[0], held[1], next(b for b in "ACGT" if b not in (held[1], held[2])))
    assert absent not in alleles
    answers = [
        ask(world, held, {}),
        ask(world, absent, {}),
        # filters nobody matches: still "not consulted", not an exact "no" (the scope is no business of it)
        ask(world, held, {}, filters="NCIT:C17998"),
    ]
    for body in answers:
        assert body["info"]["notConsulted"]["datasets"] == ["cohort", "opencounts"]
        assert "says nothing about them" in body["info"]["notConsulted"]["message"]
        cohort = notes(body)["cohort"]
        assert cohort["consulted"] is False and cohort["accessLevel"] == "controlled"
        assert "anonymous" in cohort["reason"]
        assert "passport" in cohort["toGetMore"] and "ControlledAccessGrants visa for cohort" in cohort["toGetMore"]
        assert "exists" not in cohort and "returnedGranularity" not in cohort
        assert notes(body)["packets"]["consulted"] is True  # public: answered, at record level
    # The privacy argument: what is said about datasets not consulted is the same for every variant.
    told = [(b["info"]["notConsulted"], notes(b)["cohort"], notes(b)["opencounts"]) for b in answers]
    assert told[0] == told[1] == told[2]


def test_a_registered_caller_is_never_told_yes_with_a_total_of_none(world: World, issuer: VisaIssuer) -> None:
    """Under the node default, "cohort" answers a researcher yes/no only (randomised) on rare alleles."""
    alleles = alleles_of(world)
    headers = bearer(Passports(issuer, subject="not-consulted-researcher").anonymous_researcher())
    rare = [a for a, count in alleles.items() if count <= 2][:15]
    assert rare
    mixed = 0
    for allele in rare:
        body = ask(world, allele, headers, requestedGranularity="record", includeResultsetResponses="ALL")
        summary, by_id = body["responseSummary"], notes(body)
        assert not (summary["exists"] and summary.get("numTotalResults") == 0), body
        assert all(note["consulted"] for note in by_id.values())  # a passport is asked everywhere
        cohort = by_id["cohort"]
        assert cohort["toGetMore"].startswith("a ControlledAccessGrants visa for cohort")
        if cohort["returnedGranularity"] == "boolean":
            mixed += 1
            assert "numTotalResults" not in summary
            assert body["meta"]["returnedGranularity"] == "record"  # "packets" (public) answered with records
            assert "cohort" in body["info"]["randomisedResponse"]["datasets"]
            if cohort["exists"]:
                assert summary["exists"] is True
    assert mixed, "the node default should randomise a researcher's answers on rare alleles"


def test_a_granted_caller_gets_one_level_everywhere_and_a_true_total(world: World, issuer: VisaIssuer) -> None:
    alleles = alleles_of(world)
    headers = bearer(Passports(issuer, subject="not-consulted-granted").with_grant("cohort"))
    allele = max(alleles, key=lambda a: alleles[a])
    body = world.client.get(
        "/api/datasets/cohort/g_variants",
        params={
            "referenceName": "20",
            "start": allele[0],
            "referenceBases": allele[1],
            "alternateBases": allele[2],
            "requestedGranularity": "count",
        },
        headers=headers,
    ).json()
    assert_answer(body, "g_variants")
    assert body["meta"]["returnedGranularity"] == "count"
    assert body["responseSummary"] == {"exists": True, "numTotalResults": 1}
    assert "toGetMore" not in notes(body)["cohort"]


def _section(text: str) -> str:
    found = re.search(r"<!-- beacon-answers -->\n(.*?)<!-- /beacon-answers -->", text, re.S)
    assert found, "the Beacon answers section markers are missing"
    return found.group(1)


def test_readme_and_docs_describe_beacon_answers_identically() -> None:
    readme = _section((REPO / "README.md").read_text())
    assert readme == _section((REPO / "docs" / "beacon.md").read_text())
    assert "not consulted" in readme and "returnedGranularity" in readme
    privacy = " ".join((REPO / "docs" / "privacy.md").read_text().split())
    said = "Anonymous callers get no answer about alleles from datasets that are not public: such a dataset is not"
    assert said in privacy
