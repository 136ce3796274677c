"""A membership attack on the Beacon is flagged to the stewards by the node, from its own answers.

Red team (issue 17, must-have 5): someone who holds a participant's genome walks the Beacon over that
genome's rare variants to learn whether the participant is in the dataset. The node must notice -- an audit
entry naming the person, a metric, the stewards' page -- before the walked participant's budget is spent;
a researcher screening many people's rare variants, or a clinician screening one patient's candidates (most
of them absent from the dataset, the rest carried by the patient's relatives in it), must not be flagged;
and a walk split over identities that are linked into one person is one walk.

Attacked through ``genoshare serve`` (the demo node with its broker, so the steward signs in for real) on
the demo's synthetic cohort (100 people). The cohort's policy keeps the node's default flag and sets a
budget of 3.0 without randomised response, so the answers show the budget is not spent when the flag is
raised: each of the walk's "yes" answers would be a "no" once it were. The demo's variants lie within 2 Mb
of chromosome 20, a tenth of the node's default span (``flag_min_span``, 20 Mb, for a whole genome): the
policy scales it to 100 kb, so the region stands for a genome and a twentieth of it for a stretch a patient
shares with a relative.
"""

from __future__ import annotations

import functools
import math
import random
import re
import time
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pysam
import pytest

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import RESEARCHER_STATUS
from genoshare.access.privacy import LINKED_IDENTITIES
from genoshare.demo.setup import COHORT_DATASET, DEMO_ISSUER, demo_cohort
from genoshare.node import Node, build_datasets
from genoshare.settings import load_settings

from portal_support import PortalNode, portal_node
from processes import run_cli

pytestmark = pytest.mark.slow

Allele = tuple[int, str, str]  # 0-based start, ref, alt
#: The cohort's policy in these tests: budgets with room, no noise, the node's default flag at the demo's scale.
BUDGET = 3.0
SPAN = 100_000


def _evidence(copies: int) -> float:
    """What a "yes" on an allele with this many copies tells about a carrier: -log(1 - exp(-copies)) nats."""
    return -math.log(1 - math.exp(-copies))


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    with portal_node(tmp_path_factory.mktemp("flags")) as served:
        opened = Node.open(load_settings(served.data_dir))
        try:
            build_datasets(opened).set_beacon_policy(
                COHORT_DATASET,
                {"privacy": {"default": {"budget": BUDGET, "flip_probability": 0.0, "flag_min_span": SPAN}}},
            )
        finally:
            opened.close()
        time.sleep(1)  # the server reads a dataset's policy again within a fraction of a second
        yield served


@functools.cache
def _cohort() -> dict[Allele, tuple[int, frozenset[str]]]:
    """Every allele of the cohort the node ingested: its copies and who carries it, read from the VCF."""
    alleles: dict[Allele, tuple[int, frozenset[str]]] = {}
    with pysam.VariantFile(str(demo_cohort() / "cohort.vcf.gz")) as vcf:
        for record in vcf:
            for index, alt in enumerate(record.alts or (), start=1):
                copies = {name: sample["GT"].count(index) for name, sample in record.samples.items()}
                carriers = frozenset(n for n, c in copies.items() if c)
                alleles[record.start, record.ref, alt] = (sum(copies.values()), carriers)
    return alleles


def _rare_alleles() -> dict[Allele, frozenset[str]]:
    """The cohort's alleles with 1-5 copies and who carries them."""
    return {allele: carriers for allele, (copies, carriers) in _cohort().items() if 1 <= copies <= 5}


def _copies(allele: Allele) -> int:
    return _cohort()[allele][0]


def _passport(node: PortalNode, subject: str, linked_to: str | None = None) -> str:
    """A researcher's passport from the demo issuer; ``linked_to``: a LinkedIdentities visa naming that subject."""
    issuer = VisaIssuer.load_or_create(DEMO_ISSUER, node.data_dir / "keys" / "demo-issuer.jwk.json")
    visas = [issuer.visa(subject, RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so")]
    if linked_to is not None:
        link = f"{quote(linked_to, safe='')},{quote(DEMO_ISSUER, safe='')}"
        visas.append(issuer.visa(subject, LINKED_IDENTITIES, link, by="system"))
    return issuer.passport(subject, visas)


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


def _walked(rare: dict[Allele, frozenset[str]]) -> tuple[str, list[Allele]]:
    """The participant with the most singletons, and their rare alleles, rarest first (as a walk asks them).

    Alleles with as many carriers come in no particular order: a walk has no reason to follow the genome's.
    """
    members = {member for carriers in rare.values() for member in carriers}
    target = max(members, key=lambda m: sum(carriers == {m} for carriers in rare.values()))
    alleles = sorted(a for a, carriers in rare.items() if target in carriers)
    random.Random(43).shuffle(alleles)
    return target, sorted(alleles, key=lambda a: len(rare[a]))


def test_a_walk_over_one_genome_is_flagged_before_half_the_budget_is_spent(node: PortalNode) -> None:
    target, walk = _walked(_rare_alleles())
    person = f"walker@{DEMO_ISSUER}"
    passport = _passport(node, "walker")
    answers, flagged_at = [], None
    with httpx.Client(base_url=node.url, timeout=60) as http:
        for allele in walk[:8]:
            answers.append(_ask(http, passport, allele))
            audited, metrics, page = _flags(node)
            if person in audited:
                flagged_at = len(answers)
                break
            assert person not in page
    assert flagged_at is not None, f"a walk over {target}'s rarest alleles was not flagged in 8 questions"
    # Every answer was "yes" (the budget still paid), and what they spent on the walked participant -- each
    # "yes" charges what it tells about a carrier -- is under half of the participant's budget.
    assert answers == [True] * flagged_at
    spent = sum(_evidence(_copies(allele)) for allele in walk[:flagged_at])
    assert spent < BUDGET / 2
    assert audited.count(person) == 1, "the flag is in the audit log, naming the person, once"
    assert _metric(metrics) >= 1
    assert person in page and "questions about rare variants" in page


def test_a_screen_of_one_patients_candidates_is_not_flagged(node: PortalNode) -> None:
    """A clinician asks a patient's candidate variants: half are absent from the cohort, half are rare variants
    that one participant -- the patient's relative -- carries. Counting the present ones only, every one falls
    on the relative: the node's earlier rule flagged this at the sixth of them."""
    relative, carried = _walked(_rare_alleles())
    carried = carried[:6]  # as many as the relative's budget pays for: the answers are the truth
    # The patient's own candidates: at the same places, a base no one in the cohort has there.
    taken = {(start, ref): set() for start, ref, _ in carried}
    for start, ref, alt in _cohort():
        taken.get((start, ref), set()).add(alt)
    absent = [(start, ref, min(set("ACGT") - {ref[0]} - taken[start, ref])) for start, ref, _ in carried]
    assert not set(absent) & set(_cohort()), "the made-up candidates must be absent from the cohort"
    person = f"clinician@{DEMO_ISSUER}"
    passport = _passport(node, "clinician")
    with httpx.Client(base_url=node.url, timeout=60) as http:
        answers = [_ask(http, passport, allele) for pair in zip(absent, carried, strict=True) for allele in pair]
    assert answers == [False, True] * len(carried), "the screen's answers are the truth (no noise, budget left)"
    audited, _, page = _flags(node)
    assert person not in audited and person not in page, f"a screen whose hits fall on {relative} was flagged"


def test_a_walk_split_over_two_identities_is_flagged_once_they_are_linked(node: PortalNode) -> None:
    """Two identities each ask one of a participant's singletons: neither is a walk alone. When the second's
    passport says it is the first (a LinkedIdentities visa), the two are one person, and a third question on
    the participant's alleles -- one with several copies, too light to flag either identity alone -- is."""
    rare = _rare_alleles()
    target, walk = _walked(rare)
    singles = [a for a in walk if len(rare[a]) == 1 and _copies(a) == 1]
    light = next(a for a in walk if _copies(a) >= 3)
    assert len(singles) >= 2 and _evidence(1) + _evidence(_copies(light)) < 0.6 <= 2 * _evidence(1)
    first, second = f"split-1@{DEMO_ISSUER}", f"split-2@{DEMO_ISSUER}"
    with httpx.Client(base_url=node.url, timeout=60) as http:
        assert _ask(http, _passport(node, "split-1"), singles[0])
        assert _ask(http, _passport(node, "split-2"), singles[1])
        audited, _, page = _flags(node)
        assert first not in audited and second not in audited and "split-" not in page
        assert _ask(http, _passport(node, "split-2", linked_to="split-1"), light)
    audited, _, page = _flags(node)
    flagged = [actor for actor in audited if actor in (first, second)]
    assert len(flagged) == 1, f"the split walk over {target} was not flagged as one person: {audited}"
    assert flagged[0] in page


def test_a_screen_in_genome_order_through_a_relatives_stretch_is_not_flagged(node: PortalNode) -> None:
    """A clinician screens a patient's candidates in genome order and the screen opens on a stretch the patient
    shares with a relative in the cohort: every candidate there is one of the relative's rare variants, a run
    no count tells from a walk (the rule without positions flagged it at the second). Within half the span
    it is no walk; a rarest-first walk over the same participant, asked by another person,
    leaves the stretch at once and is flagged."""
    rare = _rare_alleles()
    relative, walk = _walked(rare)
    by_place = sorted(walk)
    # The longest run of the relative's rare variants within half the span: the stretch shared with the patient.
    runs = [[a for a in by_place if start <= a[0] < start + SPAN // 2] for start, _, _ in by_place]
    stretch = max(runs, key=len)
    assert len(stretch) >= 6, f"{relative} has no run of rare variants to screen"
    clinician, walker = f"ordered-clinician@{DEMO_ISSUER}", f"ordered-walker@{DEMO_ISSUER}"
    with httpx.Client(base_url=node.url, timeout=60) as http:
        passport = _passport(node, "ordered-clinician")
        answers = [_ask(http, passport, allele) for allele in stretch[:6]]
        assert answers == [True] * 6, "the screen's answers are the truth (no noise, budget left)"
        audited, _, page = _flags(node)
        assert clinician not in audited and clinician not in page, f"a screen through {relative}'s stretch was flagged"
        passport = _passport(node, "ordered-walker")
        for allele in walk[:3]:
            _ask(http, passport, allele)
    audited, _, page = _flags(node)
    assert walker in audited and walker in page, f"a walk over {relative}'s rarest alleles was not flagged in 3"


def test_a_split_walk_is_flagged_by_the_passport_that_links_it(node: PortalNode) -> None:
    """Two identities each ask one of a participant's singletons and stop. The second comes back with a
    passport naming the first (a LinkedIdentities visa) and asks about an allele the participant does not
    carry, one too common to count: the walk is over, and the link itself raises the flag."""
    rare = _rare_alleles()
    target, walk = _walked(rare)
    singles = [a for a in walk if len(rare[a]) == 1 and _copies(a) == 1]
    assert len(singles) >= 6
    common = next(a for a, (copies, carriers) in _cohort().items() if copies > 5 and target not in carriers)
    first, second = f"passport-link-1@{DEMO_ISSUER}", f"passport-link-2@{DEMO_ISSUER}"
    with httpx.Client(base_url=node.url, timeout=60) as http:
        assert _ask(http, _passport(node, "passport-link-1"), singles[4])
        assert _ask(http, _passport(node, "passport-link-2"), singles[5])
        audited, _, _ = _flags(node)
        assert first not in audited and second not in audited
        assert _ask(http, _passport(node, "passport-link-2", linked_to="passport-link-1"), common)
    audited, _, page = _flags(node)
    flagged = [actor for actor in audited if actor in (first, second)]
    assert len(flagged) == 1, f"the split walk over {target} was not flagged at the passport's link: {audited}"
    assert flagged[0] in page


def test_a_walk_split_over_two_identities_is_flagged_when_a_steward_links_them(node: PortalNode) -> None:
    """Two identities each ask one of a participant's singletons and stop: neither is a walk alone. The steward
    links them (``genoshare privacy link``), and the flag is raised by the link itself: the walk is over, and
    no further question would have raised it."""
    rare = _rare_alleles()
    target, walk = _walked(rare)
    singles = [a for a in walk if len(rare[a]) == 1 and _copies(a) == 1]
    assert len(singles) >= 4
    first, second = f"linked-by-hand-1@{DEMO_ISSUER}", f"linked-by-hand-2@{DEMO_ISSUER}"
    with httpx.Client(base_url=node.url, timeout=60) as http:
        assert _ask(http, _passport(node, "linked-by-hand-1"), singles[2])
        assert _ask(http, _passport(node, "linked-by-hand-2"), singles[3])
    audited, _, page = _flags(node)
    assert first not in audited and second not in audited and "linked-by-hand" not in page
    done = run_cli("privacy", "link", first, second, "--data-dir", str(node.data_dir))
    assert done.returncode == 0, done.stderr
    assert "flagged" in done.stdout, done.stdout
    audited, _, page = _flags(node)
    flagged = [actor for actor in audited if actor in (first, second)]
    assert len(flagged) == 1, f"the walk over {target} was not flagged at the link: {audited}"
    assert flagged[0] in page and "linked" in page


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
