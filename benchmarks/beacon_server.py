"""Beacon latency through a real uvicorn server, beside the HTTP floor and `bcftools view -r`.

Usage: python benchmarks/beacon_server.py [--individuals 1000] [--variants 1000000] [--queries 1000]
                                        [--postgres-url ADMIN_URL | --no-postgres]

Builds (once, cached under benchmarks/work) a synthetic cohort and two nodes with the cohort ingested as a
controlled dataset, its Beacon variant index and phenotypes: one on SQLite, one on PostgreSQL (a database
made through the admin URL of --postgres-url, $GENOSHARE_TEST_POSTGRES_URL, or scripts/start-postgres.sh).
For each node in turn it starts `uvicorn` in a child process and times, over --queries random queries each,
with one keep-alive httpx client:

- floor:   GET /api/service-info (a constant document from the same server)
- allele:  researcher (ResearcherStatus visa, no grant) sequence query, boolean answer, random allele of the VCF
- allele (grant): the same asked by a researcher with a grant for the dataset (record-level caller)
- range:   researcher count of alleles in a random 100 kb window
- hpo:     researcher count of individuals with a random HPO term (descendants included) carrying a random allele
- bcftools `view -H -r 20:pos-pos` on the same VCF, a new process per query (as a CLI user would)

Beside each row's latency, what it costs whatever the load (the machine is shared): the server process's
CPU time and, on PostgreSQL, its database backends' (from /proc), and the statements and database round
trips per query (``genoshare_lab.roundtrips``, counted in the server; SQLite's statements cost none).

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
from dataclasses import dataclass
from pathlib import Path

import httpx
import pyarrow.parquet as pq
from pyarrow import ipc
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_ingestor, build_phenotypes, init_node, write_config_file
from genoshare.operations.upgrade import upgrade
from genoshare.settings import BONA_FIDE_RESEARCHER, Settings, TrustedIssuer, load_settings
from genoshare.store.db import Database
from genoshare.store.models import Dataset
from genoshare_lab.roundtrips import Counts
from genoshare_lab.synth import generate_cohort
from genoshare_lab.synth.phenotypes import PHENOTYPIC_FEATURES

WORK = Path(__file__).resolve().parent / "work"
ISSUER = "https://issuer.bench.genoshare.invalid"
HPO_QUERIES = [curie for curie, _, _ in PHENOTYPIC_FEATURES] + ["HP:0000118", "HP:0001626", "HP:0000707"]


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000


def timed(n: int, call: Callable[[int], None], before: Callable[[], None] = lambda: None) -> list[float]:
    """``n`` timed calls after a warm-up; ``before`` runs between the two."""
    for i in range(min(50, n)):  # warm-up (connections, caches) on queries the timed ones do not repeat
        call(n + i)
    before()
    out = []
    for i in range(n):
        began = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - began)
    return out


@dataclass(frozen=True)
class Row:
    """One kind of query: latency (ms), and per query the statements, round trips and CPU (ms) it cost."""

    p50: float
    p99: float
    statements: float
    round_trips: float
    server_cpu: float
    database_cpu: float


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time of the processes (all threads) so far; one that has gone counts nothing."""
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of proc(5)
    return ticks / os.sysconf("SC_CLK_TCK")


#: The server as `uvicorn`, counting its statements and round trips into the file named first.
COUNTED_SERVER = (
    "import sys; from pathlib import Path; import uvicorn; from genoshare_lab.roundtrips import Counts, count_into; "
    "count_into(Counts(Path(sys.argv[1]))); uvicorn.main(sys.argv[2:])"
)


def bench_settings(node_dir: Path, root: Path, database_url: str = "") -> Settings:
    """The node trusts the bench issuer for passports and, as a DAC of its own, for ControlledAccessGrants."""
    return load_settings(
        node_dir,
        database_url=database_url,
        trusted_issuers=[TrustedIssuer(issuer=ISSUER, jwks_file=root / "jwks.json")],
        passports={"controlled_access_grants": {"issuers": [ISSUER], "sources": [ISSUER]}},
    )


def postgres_database(admin_url: str, name: str) -> str:
    """The URL of database ``name`` on the server of ``admin_url``, created if it is not there."""
    admin = make_url(admin_url)
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        if connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}) is None:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return admin.set(database=name).render_as_string(hide_password=False)


def admin_postgres_url(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("GENOSHARE_TEST_POSTGRES_URL"):
        return os.environ["GENOSHARE_TEST_POSTGRES_URL"]
    script = Path(__file__).resolve().parents[1] / "scripts" / "start-postgres.sh"
    return subprocess.run(["bash", str(script)], check=True, capture_output=True, text=True).stdout.strip()


def cohort(n_people: int, n_variants: int) -> tuple[Path, Path, VisaIssuer]:
    root = WORK / f"beacon-{n_people}x{n_variants}"
    cohort_dir = root / "cohort"
    if not (cohort_dir / "individuals.tsv").exists():
        began = time.perf_counter()
        generate_cohort(cohort_dir, n_people, 60_000_000, seed=1, n_variants=n_variants)
        print(f"cohort generated in {time.perf_counter() - began:.0f} s", flush=True)
    issuer = VisaIssuer.load_or_create(ISSUER, root / "issuer.jwk.json")
    issuer.write_jwks(root / "jwks.json")
    return root, cohort_dir / "cohort.vcf.gz", issuer


def build(root: Path, name: str, database_url: str = "") -> tuple[Path, Settings]:
    """The node ``name`` in ``root`` on ``database_url`` (SQLite in its directory when empty), built once."""
    node_dir = root / name
    cohort_dir = root / "cohort"
    ready = node_dir / "ready"
    # A node on PostgreSQL is ready only while its database is the one it was built in.
    if not ready.exists() or ready.read_text() != database_url:
        shutil.rmtree(node_dir, ignore_errors=True)
        if database_url:
            engine = create_engine(database_url)
            with engine.begin() as connection:
                connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
            engine.dispose()
        node = init_node(bench_settings(node_dir, root, database_url))
        DatasetService(node.database).create(NewDataset("bench", "benchmark cohort", "Bench", "controlled", ["GRU"]))
        build_ingestor(node).ingest("bench", [cohort_dir / "cohort.vcf.gz"])  # publishes, then builds the index
        build_phenotypes(node).ingest("bench", [cohort_dir / "individuals.tsv"])
        node.close()
        ready.write_text(database_url)
    settings = bench_settings(node_dir, root, database_url)
    database = Database(settings.database_url)
    upgrade(database.engine, settings.keys_dir)  # a node cached by an older version gets today's schema
    database.dispose()
    node = init_node(settings)
    write_config_file(settings)  # the server reads it: a node cached by an older version gets today's policy
    with node.database.session() as session:
        session.execute(
            update(Dataset)
            .where(Dataset.id == "bench")
            .values(beacon_policy={"privacy": {"default": {"per_minute": None, "per_day": None}}})
        )
    node.close()
    return node_dir, settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


Alleles = list[tuple[int, str, str]]


def measure(
    node_dir: Path, settings: Settings, issuer: VisaIssuer, vcf: Path, alleles: Alleles, queries: int
) -> dict[str, Row]:
    """Every row against a server of the node in ``node_dir``."""
    rng = random.Random(7)
    last = max(a[0] for a in alleles)
    port = free_port()
    env = {**os.environ, "GENOSHARE_DATA_DIR": str(node_dir)}
    env.pop("GENOSHARE_DATABASE_URL", None)  # the node's own genoshare.toml names its database
    counts_file = node_dir.parent / f"{node_dir.name}.counts"
    counts_file.unlink(missing_ok=True)
    counts = Counts(counts_file)
    server = subprocess.Popen(
        [sys.executable, "-c", COUNTED_SERVER, str(counts_file), "--factory", "genoshare.api.app:app_from_environment",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env=env,
    )  # fmt: skip
    # The node's database backends (PostgreSQL), whose CPU an answer costs as well; none on SQLite.
    backends = create_engine(settings.database_url) if settings.database_url.startswith("postgresql") else None

    def backend_pids() -> list[int]:
        if backends is None:
            return []
        with backends.connect() as connection:
            query = "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            return list(connection.scalars(text(query)))

    def usage() -> tuple[int, int, float, float]:
        return counts.statements, counts.round_trips, cpu_seconds([server.pid]), cpu_seconds(backend_pids())

    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=120) as client:
            for _ in range(1200):
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
                    params: dict[str, str | int] = {
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

            results = {}
            for name, call in (("floor", floor), ("allele", allele_as(auth)), ("allele grant", allele_as(granted)),
                               ("range100kb", window), ("hpo_count", hpo)):  # fmt: skip
                started: list[tuple[int, int, float, float]] = []

                def mark(started: list[tuple[int, int, float, float]] = started) -> None:
                    started.append(usage())

                samples = timed(queries, call, mark)
                spent = [(after - before) / queries for before, after in zip(started[0], usage(), strict=True)]
                results[name] = Row(*percentiles(samples), spent[0], spent[1], spent[2] * 1000, spent[3] * 1000)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
        if backends is not None:
            backends.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--individuals", type=int, default=1000)
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--postgres-url", help="admin URL of PostgreSQL (default: $GENOSHARE_TEST_POSTGRES_URL)")
    parser.add_argument("--no-postgres", action="store_true", help="time the SQLite node only")
    args = parser.parse_args()
    root, vcf, issuer = cohort(args.individuals, args.variants)
    nodes = {"sqlite": build(root, "node")}
    if not args.no_postgres:
        database = postgres_database(
            admin_postgres_url(args.postgres_url), f"gs_bench_beacon_{args.individuals}x{args.variants}"
        )
        nodes["postgresql"] = build(root, "node-pg", database)

    index_file = next(nodes["sqlite"][0].glob("beacon/bench/*/variants.*"))
    columns = ["contig", "start", "ref", "alt", "carrier_count"]
    if index_file.suffix == ".parquet":  # a node cached by a genoshare before the Arrow layout
        table = pq.read_table(index_file, columns=columns)
    else:
        table = ipc.open_file(index_file).read_all().select(columns)
    n_rows = table.num_rows
    rng = random.Random(42)
    # Alleles nobody carries (recurrent msprime mutations) are rightly "not observed"; ask about observed ones.
    observed = [i for i, c in enumerate(table["carrier_count"].to_pylist()) if c > 0]
    picks = [rng.choice(observed) for _ in range(args.queries + 50)]
    alleles = [(table["start"][i].as_py(), table["ref"][i].as_py(), table["alt"][i].as_py()) for i in picks]

    results = {}
    for database_name, (node_dir, settings) in nodes.items():
        print(f"{database_name}: ", end="", flush=True)
        results[database_name] = measure(node_dir, settings, issuer, vcf, alleles, args.queries)

    def bcftools(i: int) -> None:
        start = alleles[i][0]
        subprocess.run(
            ["bcftools", "view", "-H", "-r", f"20:{start + 1}-{start + 1}", str(vcf)],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip

    bcf_p50, bcf_p99 = percentiles(timed(args.queries, bcftools))

    print(f"\ncohort: {args.individuals} individuals x {n_rows:,} alleles; {args.queries} queries each")
    print(f"bcftools view -r (a new process per query): p50 {bcf_p50:.2f} ms, p99 {bcf_p99:.2f} ms")
    print("per query: CPU ms of the server process and of its database backends (PostgreSQL); statements sent")
    print("to the database and round trips to it (SQLite runs in the server: no round trip)")
    for database_name, rows in results.items():
        print(f"\n{database_name}")
        print(f"{'query':<14}{'p50 ms':>9}{'p99 ms':>9}{'p50/floor':>11}{'p99/floor':>11}{'p50/bcftools':>14}"
              f"{'cpu ms':>8}{'db cpu':>8}{'stmts':>7}{'trips':>7}")  # fmt: skip
        floor = rows["floor"]
        for name, row in rows.items():
            print(f"{name:<14}{row.p50:>9.2f}{row.p99:>9.2f}{row.p50 / floor.p50:>11.2f}{row.p99 / floor.p99:>11.2f}"
                  f"{row.p50 / bcf_p50:>14.2f}{row.server_cpu:>8.2f}{row.database_cpu:>8.2f}{row.statements:>7.2f}"
                  f"{row.round_trips:>7.2f}")  # fmt: skip
    if len(results) == 2:
        sqlite, postgresql = results["sqlite"], results["postgresql"]
        print("\nallele (registered researcher), PostgreSQL beside SQLite, each to its own floor:")
        for label, pick in (("p50", lambda row: row.p50), ("p99", lambda row: row.p99)):
            ratios = [pick(rows["allele"]) / pick(rows["floor"]) for rows in (sqlite, postgresql)]
            print(f"  {label} / floor: SQLite {ratios[0]:.2f}, PostgreSQL {ratios[1]:.2f}")
        cpu = [rows["allele"].server_cpu + rows["allele"].database_cpu for rows in (sqlite, postgresql)]
        print(f"  CPU ms per answer (server + database): SQLite {cpu[0]:.2f}, PostgreSQL {cpu[1]:.2f}")
    print("load average {:.2f} {:.2f} {:.2f} (a shared machine: compare with the CPU count)".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
