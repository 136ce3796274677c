"""A membership attack on the Beacon is flagged to the stewards by the node, from its own answers.

Red team (issue 17, must-have 5): someone who holds a participant's genome walks the Beacon over that
genome's rare variants to learn whether the participant is in the dataset. The node must notice -- an audit
entry naming the person, a metric, the stewards' page -- before the walked participant's budget is spent,
and a researcher screening many people's rare variants must not be flagged.

Attacked through ``genoshare serve`` (the demo node with its broker, so the steward signs in for real) on
the demo's synthetic cohort (100 people). The cohort's policy keeps the node's default flag and sets a
budget of 3.0 without randomised response (six "yes" answers on singletons cost 2.76), so the answers show
the budget is not spent when the flag is raised: each of the walk's "yes" answers would be a "no" once it were.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator

import httpx
import pysam
import pytest

from genoshare.access.granularity import Granularity
from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import RESEARCHER_STATUS
from genoshare.access.privacy import NODE_DEFAULTS
from genoshare.demo.setup import COHORT_DATASET, DEMO_ISSUER, demo_cohort
from genoshare.node import Node, build_datasets
from genoshare.settings import load_settings

from portal_support import PortalNode, portal_node

pytestmark = pytest.mark.slow

Allele = tuple[int, str, str]  # 0-based start, ref, alt
#: The node's default flag: six questions on rare alleles one participant carries (and half of all).
FLAG_AT = NODE_DEFAULTS[Granularity.COUNT].flag_min_hits or 0


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    with portal_node(tmp_path_factory.mktemp("flags")) as served:
        opened = Node.open(load_settings(served.data_dir))
        try:
            build_datasets(opened).set_beacon_policy(
                COHORT_DATASET, {"privacy": {"default": {"budget": 3.0, "flip_probability": 0.0}}}
            )
        finally:
            opened.close()
        time.sleep(1)  # the server reads a dataset's policy again within a fraction of a second
        yield served


def _rare_alleles() -> dict[Allele, frozenset[str]]:
    """The cohort's alleles with 1-5 copies and who carries them, read from the VCF the node ingested."""
    alleles: dict[Allele, frozenset[str]] = {}
    with pysam.VariantFile(str(demo_cohort() / "cohort.vcf.gz")) as vcf:
        for record in vcf:
            for index, alt in enumerate(record.alts or (), start=1):
                copies = {name: sample["GT"].count(index) for name, sample in record.samples.items()}
                if 1 <= sum(copies.values()) <= 5:
                    alleles[record.start, record.ref, alt] = frozenset(n for n, c in copies.items() if c)
    return alleles


def _passport(node: PortalNode, subject: str) -> str:
    issuer = VisaIssuer.load_or_create(DEMO_ISSUER, node.data_dir / "keys" / "demo-issuer.jwk.json")
    visa = issuer.visa(subject, RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so")
    return issuer.passport(subject, [visa])


def _ask(http: httpx.Client, passport: str, allele: Allele) -> bool:
    start, ref, alt = allele
    params = {"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt}
    response = http.get(
        f"/api/datasets/{COHORT_DATASET}/g_variants", params=params, headers={"Authorization": f"Bearer {passport}"}
    )
    assert response.status_code == 200, response.text
    return bool(response.json()["responseSummary"]["exists"])


def _flags(node: PortalNode) -> tuple[list[str], str, str]:
    """The audit log's flagged people, the metrics page, and the stewards' page as a signed-in steward sees it."""
    opened = Node.open(load_settings(node.data_dir))
    try:
        entries = opened.audit.entries(resource_prefix="datasets/")
        audited = [e.actor for e in entries if e.action == "beacon.attack_flag"]
    finally:
        opened.close()
    with httpx.Client(base_url=node.url, timeout=60) as http:
        metrics = http.get("/metrics").text
        node.sign_in_http(http, "steward")
        page = http.get("/portal/steward").text
    return audited, metrics, page


def _metric(metrics: str) -> int:
    found = re.search(rf'^genoshare_privacy_attack_flags\{{dataset="{COHORT_DATASET}"\}} (\S+)', metrics, re.MULTILINE)
    return int(float(found.group(1))) if found else 0


def test_a_walk_over_one_genome_is_flagged_before_the_budget_is_spent(node: PortalNode) -> None:
    rare = _rare_alleles()
    members = {member for carriers in rare.values() for member in carriers}
    target = max(members, key=lambda m: sum(m in carriers for carriers in rare.values()))
    walk = sorted((a for a, carriers in rare.items() if target in carriers), key=lambda a: len(rare[a]))[:FLAG_AT]
    attacker = "walker"
    person = f"{attacker}@{DEMO_ISSUER}"
    passport = _passport(node, attacker)
    with httpx.Client(base_url=node.url, timeout=60) as http:
        before = [_ask(http, passport, allele) for allele in walk[:-1]]
        audited, metrics, page = _flags(node)
        assert person not in audited and person not in page
        last = _ask(http, passport, walk[-1])
    # Every answer was "yes": the walked participant's budget still paid for each of them when the flag came.
    assert [*before, last] == [True] * FLAG_AT
    audited, metrics, page = _flags(node)
    assert audited.count(person) == 1, "the flag is in the audit log, naming the person, once"
    assert _metric(metrics) >= 1
    assert person in page and "questions about rare variants" in page


def test_a_screen_over_many_peoples_rare_variants_is_not_flagged(node: PortalNode) -> None:
    """60 rare variants from across the cohort's region, as a screen of candidates would ask them."""
    rare = _rare_alleles()
    screen = sorted(random.Random(17).sample(sorted(rare), 60))
    person = f"screening-researcher@{DEMO_ISSUER}"
    passport = _passport(node, "screening-researcher")
    with httpx.Client(base_url=node.url, timeout=60) as http:
        for allele in screen:
            _ask(http, passport, allele)
    audited, _, page = _flags(node)
    assert person not in audited and person not in page
