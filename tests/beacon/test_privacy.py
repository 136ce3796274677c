"""The membership-inference defences are in force through the HTTP API, from the access layer.

Each test sets the ``count``-level privacy policy of dataset ``cohort`` (researchers without a grant get
counts there) and asks as a researcher of its own, so budgets and cached answers never leak between tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pysam
import pytest
from beacon_world import World
from sqlalchemy import update

from genoshare.access.issuer import VisaIssuer
from genoshare.store.models import Dataset

from support import Passports, bearer

Allele = tuple[int, str, str]
#: Everything off but what a test switches on (the node default randomises rare answers).
OFF: dict[str, Any] = {"budget": None, "flip_probability": 0.0, "per_minute": None, "per_day": None}


@pytest.fixture(scope="module")
def alleles(world: World) -> dict[Allele, tuple[int, frozenset[str]]]:
    """(start, ref, alt) -> (allele count, carrier sample names) for every allele of the cohort VCF."""
    found: dict[Allele, tuple[int, frozenset[str]]] = {}
    with pysam.VariantFile(str(world.vcf)) as vcf:
        for record in vcf:
            for index, alt in enumerate(record.alts or (), start=1):
                calls = {name: s["GT"] or () for name, s in record.samples.items()}
                carriers = frozenset(name for name, gt in calls.items() if index in gt)
                if carriers:
                    found[(record.start, record.ref, alt)] = (sum(gt.count(index) for gt in calls.values()), carriers)
    return found


@pytest.fixture
def policy(world: World) -> Iterator[Any]:
    def set_policy(count_level: dict[str, Any] | None) -> None:
        value = None if count_level is None else {"privacy": {"count": count_level}}
        with world.node.database.session() as session:
            session.execute(update(Dataset).where(Dataset.id == "cohort").values(beacon_policy=value))
        world.client.app.state.services.beacon.invalidate()  # type: ignore[attr-defined]

    yield set_policy
    set_policy(None)


def researcher(issuer: VisaIssuer, name: str) -> dict[str, str]:
    return bearer(Passports(issuer, subject=name).anonymous_researcher())


def ask(world: World, headers: dict[str, str], allele: Allele, entry: str = "g_variants") -> dict[str, Any] | None:
    """The cohort's result set for one allele (None: the dataset gave no allele-level answer)."""
    start, ref, alt = allele
    params = {"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt}
    controls = {"requestedGranularity": "count", "includeResultsetResponses": "ALL"}
    response = world.client.get(f"/api/{entry}", params={**params, **controls}, headers=headers)
    response.raise_for_status()
    sets = response.json().get("response", {}).get("resultSets", [])
    return next((rs for rs in sets if rs["id"] == "cohort"), None)


def test_anonymous_callers_get_no_allele_answers_on_controlled_data(
    world: World, alleles: dict[Allele, tuple[int, frozenset[str]]]
) -> None:
    common = max(alleles, key=lambda a: alleles[a][0])
    start, ref, alt = common
    params = {"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt}
    body = world.client.get("/api/datasets/cohort/g_variants", params=params).json()
    assert body["responseSummary"]["exists"] is False
    # the anonymous-counts dataset answers phenotype counts, but never about alleles
    body = world.client.get("/api/individuals", params={**params, "requestedGranularity": "count"}).json()
    assert "opencounts" not in {rs["id"] for rs in body.get("response", {}).get("resultSets", [])}


def test_minimum_allele_count_turns_rare_alleles_into_no(
    world: World, issuer: VisaIssuer, policy: Any, alleles: dict[Allele, tuple[int, frozenset[str]]]
) -> None:
    policy({**OFF, "min_allele_count": 3})
    headers = researcher(issuer, "privacy-min-count")
    singleton = next(a for a, (ac, _) in alleles.items() if ac == 1)
    common = next(a for a, (ac, _) in alleles.items() if ac >= 5)
    rare = ask(world, headers, singleton)
    assert rare is not None and rare["exists"] is False and rare["resultsCount"] == 0
    answer = ask(world, headers, common)
    assert answer is not None and answer["exists"] is True and answer["resultsCount"] == 1
    # the same rule holds when the allele narrows another entry: its carriers are not counted
    people = ask(world, headers, singleton, "individuals")
    assert people is not None and people["exists"] is False


def test_budget_exhaustion_withholds_and_repeats_are_free(
    world: World, issuer: VisaIssuer, policy: Any, alleles: dict[Allele, tuple[int, frozenset[str]]]
) -> None:
    policy({**OFF, "budget": 1.0})  # a singleton "yes" costs 0.46: two fit, the third does not
    headers = researcher(issuer, "privacy-budget")
    private: dict[str, list[Allele]] = {}
    for allele, (ac, carriers) in sorted(alleles.items()):
        if ac == 1:
            private.setdefault(next(iter(carriers)), []).append(allele)
    member, own = max(private.items(), key=lambda item: len(item[1]))
    assert len(own) >= 4, member
    answers = [ask(world, headers, allele) for allele in own[:3]]
    assert [a["exists"] if a else None for a in answers] == [True, True, False]
    assert ask(world, headers, own[0]) == answers[0]  # cached: the same yes, though the budget is spent
    # another researcher has a budget of their own
    assert ask(world, researcher(issuer, "privacy-budget-2"), own[2])["exists"] is True  # type: ignore[index]


def test_rate_limit_is_a_429_with_retry_after(
    world: World, issuer: VisaIssuer, policy: Any, alleles: dict[Allele, tuple[int, frozenset[str]]]
) -> None:
    policy({**OFF, "per_minute": 2})
    headers = researcher(issuer, "privacy-rate")
    some = sorted(alleles)[:3]
    for allele in some[:2]:
        assert ask(world, headers, allele) is not None
    start, ref, alt = some[2]
    params = {"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt}
    response = world.client.get("/api/g_variants", params=params, headers=headers)
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["errorCode"] == 429
    refused = [e for e in world.node.audit.entries() if e.decision == "deny" and e.details.get("status") == 429]
    assert [e.actor.split("@")[0] for e in refused] == ["privacy-rate"], "a rate-limited query is audited"


def test_randomised_answers_say_so_without_saying_which_way_the_coin_fell(
    world: World, issuer: VisaIssuer, policy: Any, alleles: dict[Allele, tuple[int, frozenset[str]]]
) -> None:
    """Under the node default a researcher is told answers on rare alleles are randomised: on every answer the
    policy randomised, "yes" or "no", so the notice gives no coin away; exact answers carry no notice."""
    singleton = next(a for a, (ac, _) in alleles.items() if ac == 1)
    absent = (singleton[0], singleton[1], next(b for b in "ACGT" if b not in (singleton[1], singleton[2])))
    assert absent not in alleles

    def notice(headers: dict[str, str], allele: Allele) -> tuple[bool, Any]:
        start, ref, alt = allele
        params = {"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt}
        body = world.client.get("/api/datasets/cohort/g_variants", params=params, headers=headers).json()
        return body["responseSummary"]["exists"], body.get("info", {}).get("randomisedResponse")

    policy(None)  # the node default
    headers = researcher(issuer, "privacy-notice")
    for allele in (singleton, absent):
        _, told = notice(headers, allele)
        assert told is not None and told["datasets"] == ["cohort"] and "randomised" in told["message"]
    policy(OFF)
    assert notice(researcher(issuer, "privacy-notice-off"), singleton) == (True, None)
    granted = bearer(Passports(issuer, subject="privacy-notice-grant").with_grant("cohort"))
    policy(None)
    assert notice(granted, singleton) == (True, None)  # record-level callers get exact answers


def test_common_alleles_get_exact_counts_and_rare_ones_stay_randomised(
    world: World, issuer: VisaIssuer, policy: Any, alleles: dict[Allele, tuple[int, frozenset[str]]]
) -> None:
    """``exact_count_min`` over the node default: a count-level researcher gets the exact number of carriers
    of a common allele, never randomised; a singleton keeps yes/no under randomised response."""
    common = max(alleles, key=lambda a: alleles[a][0])
    copies, carriers = alleles[common]
    singleton = next(a for a, (ac, _) in alleles.items() if ac == 1)
    assert copies >= 3, "the cohort needs an allele more common than a singleton"

    def summary(headers: dict[str, str], allele: Allele) -> tuple[str, dict[str, Any]]:
        """The granularity the Beacon answered at, and its summary, for the people carrying ``allele``."""
        start, ref, alt = allele
        params = {"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt}
        url = "/api/datasets/cohort/individuals"
        body = world.client.get(url, params={**params, "requestedGranularity": "count"}, headers=headers).json()
        return body["meta"]["returnedGranularity"], body["responseSummary"]

    policy(None)  # the node default: randomised response on the allele, so yes/no only
    assert summary(researcher(issuer, "privacy-exact-before"), common) == ("boolean", {"exists": True})
    policy({"exact_count_min": copies})
    headers = researcher(issuer, "privacy-exact")
    assert summary(headers, common) == ("count", {"exists": True, "numTotalResults": len(carriers)})
    granularity, rare = summary(headers, singleton)
    # The coin's answer, never the exact count of 1: a "yes" is yes/no only, a "no" a count of 0.
    if rare["exists"]:
        assert granularity == "boolean" and "numTotalResults" not in rare
    else:
        assert rare.get("numTotalResults", 0) == 0
