"""Beacon variant index benchmark: generation, ingest vs bcftools, in-process query latency.

    python benchmarks/beacon_index.py --individuals 1000 --variants 1000000

The cohort is cached under benchmarks/work/ (git-ignored); ratios are the numbers to compare across
machines, since absolute figures move with load (by +-30 % on a shared machine).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.ipc as ipc
from pyroaring import BitMap

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab" / "src"))

from genoshare.index.build import build_variant_index
from genoshare.index.serving import VariantIndex
from genoshare_lab.synth import generate_cohort
from genoshare_lab.synth.vcf import contig_length

WORK = Path(__file__).resolve().parent / "work"


def latency(label: str, queries: list[Callable[[], object]]) -> None:
    times = []
    for query in queries:
        began = time.perf_counter_ns()
        query()
        times.append(time.perf_counter_ns() - began)
    ms = np.array(times) / 1e6
    print(f"  {label:44s} p50 {np.percentile(ms, 50):7.3f} ms   p99 {np.percentile(ms, 99):7.3f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--individuals", type=int, default=1000)
    parser.add_argument("--variants", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--contig", default="20")
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3, help="ingest runs, each beside its own bcftools run")
    args = parser.parse_args()

    # ~1 site per 60 bp (a dense but realistic whole-genome-sequencing density), capped by the contig.
    length = min(contig_length(args.contig), args.variants * 60)
    cohort_dir = WORK / f"cohort-{args.individuals}x{args.variants}-seed{args.seed}"
    manifest = cohort_dir / "generation.json"
    if manifest.exists():
        generated = json.loads(manifest.read_text())
        print(f"generation: cached in {cohort_dir} (took {generated['seconds']:.1f} s)")
    else:
        began = time.perf_counter()
        cohort = generate_cohort(cohort_dir, args.individuals, length, args.seed, args.contig, n_variants=args.variants)
        generated = {"seconds": time.perf_counter() - began, "sites": cohort.n_sites}
        manifest.write_text(json.dumps(generated))
        print(f"generation: {generated['seconds']:.1f} s for {cohort.n_sites:,} sites x {args.individuals} individuals")
    vcf = cohort_dir / "cohort.vcf.gz"
    sites = generated["sites"]
    print(f"  {vcf.stat().st_size / 1e6:.1f} MB bgzipped VCF, {length / 1e6:.1f} Mb of chr{args.contig}")

    bcftools = shutil.which("bcftools")
    assert bcftools is not None, "bcftools is needed for the baseline"
    index_dir = cohort_dir / "index"
    ratios = []
    for run in range(1, args.repeat + 1):  # alternate, so both sides see the same machine load
        began = time.perf_counter()
        with open("/dev/null", "wb") as null:
            subprocess.run([bcftools, "view", "-Ou", str(vcf)], stdout=null, check=True)
        bcftools_rate = sites / (time.perf_counter() - began)
        summary = build_variant_index(vcf, index_dir)
        ingest_rate = summary.n_records / summary.seconds
        ratios.append(ingest_rate / bcftools_rate)
        print(f"ingest run {run}: {summary.n_records:,} records -> {summary.n_rows:,} rows in {summary.seconds:.1f} s")
        print(f"  ingest {ingest_rate:,.0f} variants/s   bcftools view -Ou {bcftools_rate:,.0f} variants/s")
        print(f"  ratio {ratios[-1]:.2f}x")
    print(f"ingest ratio, median of {len(ratios)}: {float(np.median(ratios)):.2f}x (target >= 0.5x)")
    print(f"  index file {summary.path.stat().st_size / 1e6:.1f} MB")
    # The index is not loaded yet, so this is the build's peak (its bcftools child is a separate process).
    print(f"  peak RSS after ingest: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")

    began = time.perf_counter()
    index = VariantIndex({"cohort": index_dir})
    print(f"load: {time.perf_counter() - began:.2f} s")

    table = ipc.open_file(summary.path).read_all().select(["start", "ref", "alt"])  # the server reads lazily
    rng = random.Random(args.seed)
    rows = [rng.randrange(table.num_rows) for _ in range(args.queries)]
    alleles = [(table["start"][r].as_py(), table["ref"][r].as_py(), table["alt"][r].as_py()) for r in rows]
    allowed = BitMap(rng.sample(range(args.individuals), int(0.3 * args.individuals)))
    windows = [rng.randrange(0, max(1, length - 100_000)) for _ in range(args.queries)]
    contig = args.contig
    print(f"queries (in process, {args.queries} each):")
    latency(
        "allele (sequence query + rows)",
        [lambda s=s, r=r, a=a: index.sequence_query(contig, s, a, r).rows() for s, r, a in alleles],
    )
    latency(
        "allele carriers within random 30% samples",
        [lambda s=s, r=r, a=a: index.sequence_query(contig, s, a, r).carrier_count(allowed) for s, r, a in alleles],
    )
    latency(
        "100 kb range (matches only)", [lambda w=w: index.range_query(contig, w, w + 100_000).total for w in windows]
    )
    latency(
        "100 kb range, first page of 10 rows",
        [lambda w=w: index.range_query(contig, w, w + 100_000).rows(limit=10) for w in windows],
    )
    latency(
        "100 kb range, carriers within random 30%",
        [lambda w=w: index.range_query(contig, w, w + 100_000).carrier_count(allowed) for w in windows],
    )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
