"""Two `genoshare serve` processes on different ports, one database: one node, not two (issue 19).

Behind a proxy that spreads requests over several processes, an attacker who sent each question to another
process would, if any of them kept state of its own, get a budget per process, or a process that has not heard
of a revocation or a withdrawal. Here a registered researcher walks one member's rarest alleles through both
processes at once; the member's budget must be spent once, by both, exactly as one process would. A committee's
revocation and a participant's withdrawal through one process must hold at the other within a second, and the
audit entries both processes append must make one chain that verifies. On PostgreSQL (the deployment of
issue 19: processes on several machines) and on SQLite (several processes on one machine).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pysam
import pytest
from granted import CHAIR, DRS, Grantee, consent_token, researcher_passport
from sqlalchemy import select

from genoshare.access.issuer import VisaIssuer
from genoshare.access.privacy import spend_cost
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor, build_phenotypes
from genoshare.store.beacon_tables import BeaconIndividual
from genoshare.store.privacy_tables import PrivacySession, PrivacySpend, PrivacyWatch
from genoshare_lab.synth import generate_cohort

from support import TEST_ISSUER, pseudonyms_by_source

pytestmark = pytest.mark.slow

BUDGET = 2.0
#: A "yes" on an allele one member carries once: every question of the walk costs the same.
COST = spend_cost(1)
#: How long a change made through one process may take to hold at the other.
VISIBLE_WITHIN = 1.0
PROXY = "https://genoshare.example.org"


def singletons(vcf: Path) -> dict[str, list[dict[str, Any]]]:
    """Per sample, the Beacon queries of the alleles only it carries, once (heterozygous, 1 copy in all)."""
    found: dict[str, list[dict[str, Any]]] = {}
    with pysam.VariantFile(str(vcf)) as records:
        for record in records:
            for index, alt in enumerate(record.alts or (), start=1):
                copies = {
                    name: sum(allele == index for allele in sample["GT"] if allele is not None)
                    for name, sample in record.samples.items()
                }
                carriers = [name for name, count in copies.items() if count]
                if len(carriers) == 1 and copies[carriers[0]] == 1:
                    found.setdefault(carriers[0], []).append(
                        {"referenceName": record.chrom, "start": record.start, "referenceBases": record.ref,
                         "alternateBases": alt, "requestedGranularity": "boolean"}
                    )  # fmt: skip
    return found


def first_time(check: Callable[[], bool], limit: float = 10.0) -> float:
    """Seconds from now until a call of ``check`` that began then returned True (polled, never slept over)."""
    began = time.monotonic()
    while time.monotonic() - began < limit:
        asked = time.monotonic()
        if check():
            return asked - began
        time.sleep(0.02)
    return math.inf


def test_two_processes_are_one_node(node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path) -> None:
    cohort = generate_cohort(tmp_path / "cohort", 6, 200_000, seed=7, n_variants=600)
    datasets = DatasetService(node.database)
    datasets.create(NewDataset("study", "Study", "Example Hospital", "controlled", ["GRU"]))
    datasets.set_committee("study", [f"{CHAIR}@{TEST_ISSUER}"], auto_approve=True)
    vcf = build_ingestor(node).ingest("study", [cohort.vcf_path]).published[0]
    build_phenotypes(node).ingest("study", [cohort.individuals_path])
    # Deterministic answers: no coin, no rate limit; only the budget stands between the walk and the member.
    exact = {"budget": BUDGET, "flip_probability": 0.0, "per_minute": None, "per_day": None}
    datasets.set_beacon_policy("study", {"privacy": {"default": exact}})
    target, walk = max(singletons(cohort.vcf_path).items(), key=lambda item: len(item[1]))
    assert len(walk) >= 3 * math.ceil(BUDGET / COST), "the cohort gives the walk enough of the member's alleles"
    pseudonym = pseudonyms_by_source(node, [target])[target]
    with node.database.sessions() as session:
        member = session.scalars(
            select(BeaconIndividual.sample_number).where(BeaconIndividual.pseudonym == pseudonym)
        ).one()

    env = {"GENOSHARE_DATABASE_URL": node.settings.database_url}
    # Behind one proxy: one public URL (the passports the node signs name it as their issuer).
    servers = [serve(node.settings.data_dir, env, public_url=PROXY) for _ in range(2)]
    attacker = {"Authorization": f"Bearer {researcher_passport(issuer, 'walker')}"}
    with httpx.Client(timeout=60) as http:
        # 1. The walk, two questions at a time on each process.
        def ask(numbered: tuple[int, dict[str, Any]]) -> bool:
            number, params = numbered
            answer = http.get(f"{servers[number % 2].url}/api/g_variants", params=params, headers=attacker)
            assert answer.status_code == 200, answer.text
            return bool(answer.json()["responseSummary"]["exists"])

        with ThreadPoolExecutor(4) as pool:
            said = list(pool.map(ask, enumerate(walk)))
        with node.database.sessions() as session:
            spends = {row.member: row.spent for row in session.scalars(select(PrivacySpend))}
            requests = session.scalars(select(PrivacySession.requests)).all()
        affordable = math.floor(BUDGET / COST + 1e-9)
        assert said.count(True) == affordable, f"{said.count(True)} yes answers where the budget pays {affordable}"
        assert spends == pytest.approx({member: affordable * COST}), spends
        assert spends[member] <= BUDGET
        assert list(requests) == [len(walk)], "every question counted once, whichever process answered it"
        # The attack watch (issue 17) kept one count too: the walk was flagged once, by whichever process.
        with node.database.sessions() as session:
            rows = session.scalars(select(PrivacyWatch)).all()
            watched = [(row.rare_questions, row.flagged_at is not None) for row in rows]
        assert watched == [(len(walk), True)], watched
        flags = [e for e in node.audit.entries(resource_prefix="datasets/") if e.action == "beacon.attack_flag"]
        assert [e.actor for e in flags] == [f"walker@{TEST_ISSUER}"]

        # 2. A committee's revocation through one process holds at the other.
        grantee = Grantee(http, servers[0].url, issuer, "grantee")
        access = f"{DRS}/objects/{vcf.id}/access/https"
        assert http.get(f"{servers[1].url}{access}", headers=grantee.headers).status_code == 200
        chair = {"Authorization": f"Bearer {researcher_passport(issuer, CHAIR)}"}
        request_id = http.get(f"{servers[0].url}/governance/requests", headers=grantee.registered).json()[0]["id"]
        revoked = http.post(
            f"{servers[0].url}/governance/requests/{request_id}/revoke", json={"reason": "audit"}, headers=chair
        )
        assert revoked.status_code == 200, revoked.text
        took = first_time(lambda: http.get(f"{servers[1].url}{access}", headers=grantee.headers).status_code == 403)
        assert took <= VISIBLE_WITHIN, f"the other process still opened the data {took:.2f} s after the revocation"

        # 3. A participant's withdrawal through one process holds at the other.
        counter = Grantee(http, servers[1].url, issuer, "counter")
        counted = {"requestedGranularity": "count"}

        def individuals(server: int) -> int:
            answer = http.get(f"{servers[server].url}/api/individuals", params=counted, headers=counter.headers)
            assert answer.status_code == 200, answer.text
            return int(answer.json()["responseSummary"]["numTotalResults"])

        before = individuals(1)
        withdrawn = http.post(f"{servers[0].url}/consent/withdraw", headers=consent_token(node, pseudonym))
        assert withdrawn.status_code == 200, withdrawn.text
        took = first_time(lambda: individuals(1) == before - 1)
        assert took <= VISIBLE_WITHIN, f"the other process still counted the participant {took:.2f} s after"

    # 4. Both processes appended to the audit log, concurrently: one chain, and it verifies.
    logs = [server.stop() for server in servers]
    report = node.audit.verify()
    assert report.ok, report.problem
    for log in logs:
        routes = {json.loads(line).get("route") for line in log.splitlines() if line.startswith("{")}
        assert "/api/g_variants" in routes, "both processes answered the walk"
