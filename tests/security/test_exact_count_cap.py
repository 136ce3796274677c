"""Exact counts on common alleles are capped per person, across identities and server processes (issue 17).

Red team (attack A3, Homer et al. 2008): exact allele counts identify members once an attacker has enough of
them, so a count-level caller gets exact counts for at most ``exact_count_cap`` distinct common alleles of a
dataset. The attacker tries to get more: by asking through a second server process, and with a second
identity its passport links to the first. A repeat of a counted allele costs nothing, rare alleles never get
an exact count, and once the cap is spent the answer says why.

Through two ``genoshare serve`` processes on one SQLite database; a controlled dataset holding the VCF 4.3
spec example (three people), where a researcher without a grant is a count-level caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from pyroaring import BitMap
from spec_node import spec_node

from genoshare.access.granularity import Granularity
from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import Decision
from genoshare.access.privacy import EXACT_COUNTS_SPENT, LINKED_IDENTITIES, Answer, Caller, PrivacyGuard
from genoshare.access.privacy_state import SqlPrivacyState
from genoshare.store.db import Database, migrate
from genoshare.store.models import Dataset

from support import TEST_ISSUER, Passports, bearer

DATASET = "ctrl"
Allele = dict[str, str | int]
#: Alleles with 2-4 copies among the spec VCF's six haplotypes (0-based starts), and two with one copy.
COMMON: list[Allele] = [
    {"referenceName": "20", "start": 14369, "referenceBases": "G", "alternateBases": "A"},
    {"referenceName": "20", "start": 1110695, "referenceBases": "A", "alternateBases": "T"},
    {"referenceName": "20", "start": 1110695, "referenceBases": "A", "alternateBases": "G"},
    {"referenceName": "20", "start": 1234566, "referenceBases": "GTC", "alternateBases": "G"},
]
RARE: list[Allele] = [
    {"referenceName": "20", "start": 17329, "referenceBases": "T", "alternateBases": "A"},
    {"referenceName": "20", "start": 1234566, "referenceBases": "GTC", "alternateBases": "GTCT"},
]
CAP = 2


@pytest.fixture
def data_dir(tmp_path: Path, issuer: VisaIssuer) -> Path:
    """The node, counts exact from 2 copies for at most ``CAP`` alleles per person, other defences the node's."""
    policy = {"count": {"exact_count_min": 2, "exact_count_cap": CAP, "per_minute": None}}
    return spec_node(tmp_path, issuer, DATASET, "controlled", policy).data_dir


def _passport(issuer: VisaIssuer, subject: str, linked_to: str | None = None) -> str:
    """A researcher's passport (no grant: count level on a controlled dataset), optionally linked to another."""
    visas = [Passports(issuer, subject).researcher_visa()]
    if linked_to is not None:
        link = f"{quote(linked_to, safe='')},{quote(TEST_ISSUER, safe='')}"
        visas.append(issuer.visa(subject, LINKED_IDENTITIES, link, by="system"))
    return issuer.passport(subject, visas)


def _ask(server: Any, passport: str, allele: Allele) -> dict[str, Any]:
    """The dataset's note in the answer (what a caller reads: level returned, exists, why)."""
    with httpx.Client(base_url=server.url, timeout=60) as http:
        response = http.get(f"/api/datasets/{DATASET}/g_variants", params=allele, headers=bearer(passport))
    assert response.status_code == 200, response.text
    body = response.json()
    (note,) = [n for n in body["info"]["datasets"] if n["id"] == DATASET]
    note["numTotalResults"] = body["responseSummary"].get("numTotalResults")
    return note


def _counted(note: dict[str, Any]) -> bool:
    """A "yes" given as a count: a "no" is a count of 0 on every path, so it tells nothing here."""
    return note["returnedGranularity"] == "count" and note["exists"] and note["numTotalResults"] is not None


def test_exact_counts_stop_at_the_cap_for_every_identity_and_process(
    data_dir: Path, issuer: VisaIssuer, serve: Any
) -> None:
    first = serve(data_dir, {"GENOSHARE_DATABASE_URL": ""})
    second = serve(data_dir, {"GENOSHARE_DATABASE_URL": ""})
    alice = _passport(issuer, "alice")

    # Rare alleles never get an exact count, and asking about them spends nothing of the cap.
    for allele in RARE:
        rare = _ask(first, alice, allele)
        assert not _counted(rare) and "exactCounts" not in rare, rare

    # Up to the cap, common alleles come back as counts, one through each process.
    counted = [_ask(first, alice, COMMON[0]), _ask(second, alice, COMMON[1])]
    assert all(_counted(note) and note["exists"] for note in counted), counted
    # A repeat of a counted allele is answered again, through the other process, and charges nothing.
    assert _ask(second, alice, COMMON[0]) == counted[0]

    # The cap is spent: the next common allele gets no count (a yes/no; a "no" is a count of 0 on every path),
    # through either process, and the note says why.
    for server in (first, second):
        capped = _ask(server, alice, COMMON[2])
        assert not _counted(capped), capped
        assert "exact counts" in capped["exactCounts"], capped
    # ... and rare alleles stay without counts.
    assert not _counted(_ask(second, alice, RARE[0]))

    # A second identity whose passport says it is Alice finds her cap spent; her counts stay hers to repeat.
    alias = _passport(issuer, "alice-at-home", linked_to="alice")
    capped = _ask(second, alias, COMMON[3])
    assert not _counted(capped) and "exactCounts" in capped, "a linked identity got a fresh cap"
    assert _counted(_ask(first, alias, COMMON[1]))

    # The control: someone else has a cap of their own, so the refusals above were Alice's cap.
    bob = _passport(issuer, "bob")
    assert [_counted(_ask(first, bob, allele)) for allele in COMMON] == [True, True, False, False]


def test_linked_identities_merge_their_exact_counts_in_the_database(database_url: str) -> None:
    """Two guards on one database (two server processes' copies), SQLite and PostgreSQL: a steward's link of
    two identities that each had exact counts leaves one person with the distinct alleles of both counted."""
    database = Database(database_url)
    migrate(database.engine)
    policy = {"privacy": {"count": {"exact_count_min": 20, "exact_count_cap": 3}}}
    with database.session() as session:
        session.add(
            Dataset(id="cohort", title="c", custodian="steward", access_level="controlled", beacon_policy=policy)
        )
    with database.session() as session:
        ds = session.get(Dataset, "cohort")
        assert ds is not None
    guards = [PrivacyGuard(SqlPrivacyState(database)) for _ in range(2)]
    count = Decision("cohort", Granularity.COUNT, "test")

    def ask(process: int, account: str, allele: str, copies: int = 30) -> Answer:
        guard = guards[process]
        caller = Caller(account, guard.state.principal_of(account) or account)
        return guard.filter_answer(caller, count, ds, allele, BitMap(range(copies // 2)), copies)

    exact = [ask(0, "alice", "c0"), ask(1, "alice", "c1"), ask(1, "alice", "c0"), ask(0, "alias", "c1")]
    exact.append(ask(1, "alias", "c2"))
    assert [a.allele_count for a in exact] == [30, 30, 30, 30, 30]
    # Rare alleles never get an exact count, and cost nothing of the cap.
    assert all(ask(i % 2, "alice", f"rare{i}", copies=19).allele_count is None for i in range(5))

    # Alone, each identity had fewer than 3 distinct alleles counted; together they had 3 (c0, c1, c2).
    guards[0].link_accounts("alice", "alias", by="steward")
    for process, account in ((1, "alice"), (0, "alias")):
        capped = ask(process, account, f"c-new-{process}")
        assert capped.allele_count is None and capped.reason.endswith(EXACT_COUNTS_SPENT), capped
    # Counts already given are given again, whichever identity asks.
    assert ask(1, "alias", "c0").allele_count == 30
    database.dispose()
