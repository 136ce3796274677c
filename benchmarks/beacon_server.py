"""Beacon latency through a real uvicorn server, beside the HTTP floor and `bcftools view -r`.

Usage: python benchmarks/beacon_server.py [--individuals 1000] [--variants 1000000] [--queries 1000]

Builds (once, cached under benchmarks/work) a synthetic cohort, a node with the cohort ingested as a
controlled dataset, its Beacon variant index and phenotypes; starts `uvicorn` in a child process; then times,
over --queries random queries each, with one keep-alive httpx client:

- floor:   GET /api/service-info (a constant document from the same server)
- allele:  researcher (ResearcherStatus visa, no grant) sequence query, boolean answer, random allele of the VCF
- allele (grant): the same asked by a researcher with a grant for the dataset (record-level caller)
- range:   researcher count of alleles in a random 100 kb window
- hpo:     researcher count of individuals with a random HPO term (descendants included) carrying a random allele
- bcftools `view -H -r 20:pos-pos` on the same VCF, a new process per query (as a CLI user would)

Every allele-level answer passes the privacy guard. The researcher gets the node's default policy for
registered users (per-member budget, randomised response on rare alleles, answers cached in the metadata
database) with the rate limits switched off for the dataset, since one client asking thousands of questions a
minute is exactly what they stop; anonymous callers get no allele-level answer on a controlled dataset.

Ingest throughput beside `bcftools view -Ou` is measured by benchmarks/beacon_index.py (three runs on a fresh
cohort); this benchmark times the node's build of its cached cohort only once, so it does not report it.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow.parquet as pq
from sqlalchemy import update

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_ingestor, build_phenotypes, init_node, write_config_file
from genoshare.settings import BONA_FIDE_RESEARCHER, Settings, TrustedIssuer, load_settings
from genoshare.store.models import Dataset
from genoshare_lab.synth import generate_cohort
from genoshare_lab.synth.phenotypes import PHENOTYPIC_FEATURES

WORK = Path(__file__).resolve().parent / "work"
ISSUER = "https://issuer.bench.genoshare.invalid"
HPO_QUERIES = [curie for curie, _, _ in PHENOTYPIC_FEATURES] + ["HP:0000118", "HP:0001626", "HP:0000707"]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def timed(n: int, call: Callable[[int], None]) -> list[float]:
    for i in range(min(50, n)):  # warm-up (connections, caches) on queries the timed ones do not repeat
        call(n + i)
    out = []
    for i in range(n):
        began = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - began)
    return out


def bench_settings(node_dir: Path, root: Path) -> Settings:
    """The node trusts the bench issuer for passports and, as a DAC of its own, for ControlledAccessGrants."""
    return load_settings(
        node_dir,
        trusted_issuers=[TrustedIssuer(issuer=ISSUER, jwks_file=root / "jwks.json")],
        passports={"controlled_access_grants": {"issuers": [ISSUER], "sources": [ISSUER]}},
    )


def build(n_people: int, n_variants: int) -> tuple[Path, Path, VisaIssuer, Settings]:
    root = WORK / f"beacon-{n_people}x{n_variants}"
    cohort_dir = root / "cohort"
    if not (cohort_dir / "individuals.tsv").exists():
        began = time.perf_counter()
        generate_cohort(cohort_dir, n_people, 60_000_000, seed=1, n_variants=n_variants)
        print(f"cohort generated in {time.perf_counter() - began:.0f} s", flush=True)
    vcf = cohort_dir / "cohort.vcf.gz"
    issuer = VisaIssuer.load_or_create(ISSUER, root / "issuer.jwk.json")
    node_dir = root / "node"
    if not (node_dir / "ready").exists():
        shutil.rmtree(node_dir, ignore_errors=True)
        issuer.write_jwks(root / "jwks.json")
        node = init_node(bench_settings(node_dir, root))
        DatasetService(node.database).create(NewDataset("bench", "benchmark cohort", "Bench", "controlled", ["GRU"]))
        build_ingestor(node).ingest("bench", [vcf])  # publishes, then builds the Beacon variant index
        build_phenotypes(node).ingest("bench", [cohort_dir / "individuals.tsv"])
        node.close()
        (node_dir / "ready").touch()
    settings = bench_settings(node_dir, root)
    node = init_node(settings)  # idempotent: brings a cached node's schema up to date
    write_config_file(settings)  # the server reads it: a node cached by an older version gets today's policy
    with node.database.session() as session:
        session.execute(
            update(Dataset)
            .where(Dataset.id == "bench")
            .values(beacon_policy={"privacy": {"default": {"per_minute": None, "per_day": None}}})
        )
    node.close()
    return node_dir, vcf, issuer, settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--individuals", type=int, default=1000)
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    args = parser.parse_args()
    node_dir, vcf, issuer, settings = build(args.individuals, args.variants)

    index_rel = next(node_dir.glob("beacon/bench/*/variants.parquet"))
    table = pq.read_table(index_rel, columns=["contig", "start", "ref", "alt", "carrier_count"])
    n_rows = table.num_rows
    rng = random.Random(42)
    # Alleles nobody carries (recurrent msprime mutations) are rightly "not observed"; ask about observed ones.
    observed = [i for i, c in enumerate(table["carrier_count"].to_pylist()) if c > 0]
    picks = [rng.choice(observed) for _ in range(args.queries + 50)]
    alleles = [(table["start"][i].as_py(), table["ref"][i].as_py(), table["alt"][i].as_py()) for i in picks]
    last = max(a[0] for a in alleles)

    port = free_port()
    env = {**os.environ, "GENOSHARE_DATA_DIR": str(node_dir)}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "genoshare.api.app:app_from_environment",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=120) as client:
            for _ in range(200):
                try:
                    client.get("/api/service-info")
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            began = time.perf_counter()
            s0, _, a0 = alleles[0]
            client.get("/api/g_variants", params={"referenceName": "20", "start": s0, "alternateBases": a0})
            print(f"first variant query (loads the index): {time.perf_counter() - began:.1f} s")
            # A researcher new to the node on every run: the guard's answer cache and budgets start empty, so
            # the allele row measures first answers (a budget spend and an answer written), not repeats.
            user = f"bench-user-{time.time_ns()}"
            status = issuer.visa(user, RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by="so")
            researcher = issuer.passport(user, [status], lifetime=86400)
            auth = {"Authorization": f"Bearer {researcher}"}
            grant = issuer.visa(user, CONTROLLED_ACCESS_GRANTS, f"{settings.public_url}/datasets/bench", by="dac")
            granted = {"Authorization": f"Bearer {issuer.passport(user, [status, grant], lifetime=86400)}"}
            # A visa the node's passport policy drops would leave a caller with no access, timed on another path.
            for headers, wanted in ((auth, "ResearcherStatus"), (granted, "ControlledAccessGrants")):
                answer = client.get("/api/individuals", params={"requestedGranularity": "count"}, headers=headers)
                access = answer.json()["info"]["datasets"][0]["access"]
                if wanted not in access:
                    sys.exit(f"the bench passport's {wanted} visa does not count on the node: {access}")

            def floor(i: int) -> None:
                client.get("/api/service-info").raise_for_status()

            def allele_as(headers: dict[str, str]) -> Callable[[int], None]:
                def allele(i: int) -> None:
                    start, ref, alt = alleles[i]
                    params = {
                        "referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt,
                        "requestedGranularity": "boolean",
                    }  # fmt: skip
                    client.get("/api/g_variants", params=params, headers=headers).raise_for_status()

                return allele

            def window(i: int) -> None:
                start = rng.randrange(0, max(1, last - 100_000))
                params: dict[str, str | int] = {
                    "referenceName": "20",
                    "start": start,
                    "end": start + 100_000,
                    "requestedGranularity": "count",
                }
                client.get("/api/g_variants", params=params, headers=auth).raise_for_status()

            def hpo(i: int) -> None:
                start, ref, alt = alleles[i]
                params = {
                    "filters": HPO_QUERIES[i % len(HPO_QUERIES)], "requestedGranularity": "count",
                    "referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt,
                }  # fmt: skip
                client.get("/api/individuals", params=params, headers=auth).raise_for_status()

            def bcftools(i: int) -> None:
                start = alleles[i][0]
                subprocess.run(
                    ["bcftools", "view", "-H", "-r", f"20:{start + 1}-{start + 1}", str(vcf)],
                    check=True, stdout=subprocess.DEVNULL,
                )  # fmt: skip

            results = {}
            for name, call in (("floor", floor), ("allele", allele_as(auth)), ("allele grant", allele_as(granted)),
                               ("range100kb", window), ("hpo_count", hpo), ("bcftools -r", bcftools)):  # fmt: skip
                results[name] = percentiles(timed(args.queries, call))
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)

    print(f"\ncohort: {args.individuals} individuals x {n_rows:,} alleles; {args.queries} queries each")
    print(f"{'query':<14}{'p50 ms':>10}{'p99 ms':>10}{'p50 / floor':>14}{'p50 / bcftools':>16}")
    floor_p50, bcf_p50 = results["floor"][0], results["bcftools -r"][0]
    for name, (p50, p99) in results.items():
        print(f"{name:<14}{p50:>10.2f}{p99:>10.2f}{p50 / floor_p50:>14.2f}{p50 / bcf_p50:>16.2f}")
    print("load average {:.2f} {:.2f} {:.2f} (a shared machine: compare with the CPU count)".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
