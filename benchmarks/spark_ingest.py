"""Ingest on Spark beside the embedded ingest and `bcftools view -Ou`, on one generated multi-sample file.

    python benchmarks/spark_ingest.py                       # 1,000 people x 200,000 variants, a few minutes
    python benchmarks/spark_ingest.py --variants 50000      # a quick look

Rows, in variants (VCF records) per second and wall time:
  * `bcftools view -Ou` of the file to /dev/null: the baseline, parsing alone;
  * the embedded Beacon index build (`build_variant_index`, what `genoshare ingest` runs);
  * the Spark index build (`genoshare ingest --engine spark`) in local mode on 1 and on 2 workers, the
    session already started (its start-up is shown on its own line), `--records-per-task` records a task;
  * the whole `genoshare ingest` (validate, pseudonymise, encrypt, publish, index) with each engine once.
The Spark builds are checked to write the same rows as the embedded one. The cohort (msprime, most
variants rare) is cached under benchmarks/work/spark_ingest/; `uptime` is printed before and after, since a
shared machine's load moves every figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab" / "src"))

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.index.build import build_variant_index
from genoshare.index.spark import SparkIndexBuilder, plan_regions, spark_session
from genoshare.node import build_ingestor, init_node
from genoshare.settings import load_settings
from genoshare_lab.synth import generate_cohort

WORK = Path(__file__).resolve().parent / "work" / "spark_ingest"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def timed(function: Callable[[], object]) -> float:
    began = time.perf_counter()
    function()
    return time.perf_counter() - began


def rows(index_dir: Path) -> pa.Table:
    manifest = index_dir / "variants.json"
    files = (
        [index_dir / p for p in json.loads(manifest.read_text())["parts"]]
        if manifest.exists()
        else [index_dir / "variants.arrow"]
    )
    return pa.concat_tables(ipc.open_file(f).read_all() for f in files).replace_schema_metadata(None)


def cohort(individuals: int, variants: int, seed: int, fmt: str) -> Path:
    folder = WORK / f"cohort-{individuals}x{variants}-seed{seed}"
    vcf = folder / "cohort.vcf.gz"
    if not vcf.exists():
        began = time.perf_counter()
        generate_cohort(folder, individuals, min(60_000_000, variants * 60), seed, "20", n_variants=variants)
        print(f"generated {vcf} in {time.perf_counter() - began:.0f} s")
    if fmt == "vcf":
        return vcf
    bcf = folder / "cohort.bcf"
    if not bcf.exists():
        subprocess.run(["bcftools", "view", "--no-version", "-Ob", "-o", str(bcf), str(vcf)], check=True)
        subprocess.run(["bcftools", "index", "--csi", str(bcf)], check=True)
    return bcf


def whole_ingest(source: Path, engine: str, workers: int, records_per_task: int) -> float:
    with tempfile.TemporaryDirectory(dir=WORK) as scratch:
        settings = load_settings(
            Path(scratch) / "node",
            environment="test",
            spark={"master": f"local[{workers}]", "records_per_task": records_per_task},
        )
        node = init_node(settings)
        DatasetService(node.database).create(NewDataset("cohort", "Cohort", "Bench", "controlled", ["GRU"]))
        copy = Path(scratch) / f"cohort-{engine}{''.join(source.suffixes)}"
        shutil.copyfile(source, copy)
        if engine == "spark":  # started before the clock, as a long-running cluster would be
            spark_session(f"local[{workers}]", {}).sparkContext.parallelize(range(workers), workers).count()
        try:
            return timed(lambda: build_ingestor(node, engine).ingest("cohort", [copy]))  # type: ignore[arg-type]
        finally:
            node.close()


def spark_build(workers: int, source: Path, target: Path, numbers: dict[str, int], records_per_task: int) -> float:
    began = time.perf_counter()
    session = spark_session(f"local[{workers}]", {})
    session.sparkContext.parallelize(range(workers), workers).count()  # Python workers up
    print(f"Spark local[{workers}] session start: {time.perf_counter() - began:.1f} s")
    try:
        return timed(lambda: SparkIndexBuilder(lambda: session, records_per_task)(source, target, numbers))
    finally:
        session.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--individuals", type=int, default=1000)
    parser.add_argument("--variants", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--format", choices=["vcf", "bcf"], default="vcf")
    parser.add_argument("--records-per-task", type=int, default=25_000)
    parser.add_argument("--no-whole-ingest", action="store_true", help="index builds only")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    source = cohort(args.individuals, args.variants, args.seed, args.format)
    n_records = int(
        subprocess.run(
            ["bcftools", "index", "--nrecords", str(source)], capture_output=True, text=True, check=True
        ).stdout
    )
    print(
        f"input: {source.name}, {source.stat().st_size / 1e6:.1f} MB, {n_records:,} records x "
        f"{args.individuals} samples; {len(plan_regions(source, args.records_per_task))} Spark tasks"
    )
    print(f"load before: {uptime()}")
    numbers = {f"GS{i + 1:05d}": i for i in range(args.individuals)}
    results: list[tuple[str, float]] = []

    with open("/dev/null", "wb") as null:
        results.append(
            (
                "bcftools view -Ou (baseline)",
                timed(lambda: subprocess.run(["bcftools", "view", "-Ou", str(source)], stdout=null, check=True)),
            )
        )
    with tempfile.TemporaryDirectory(dir=WORK) as out:
        embedded = Path(out) / "embedded"
        results.append(("embedded index build", timed(lambda: build_variant_index(source, embedded, numbers))))
        expected = rows(embedded)
        for workers in (1, 2):
            target = Path(out) / f"spark-{workers}"
            seconds = spark_build(workers, source, target, numbers, args.records_per_task)
            results.append((f"Spark index build, local[{workers}]", seconds))
            assert rows(target).equals(expected), "the Spark build wrote other rows than the embedded one"
    if not args.no_whole_ingest:
        results.append(("genoshare ingest, embedded", whole_ingest(source, "embedded", 1, args.records_per_task)))
        results.append(("genoshare ingest, spark local[2]", whole_ingest(source, "spark", 2, args.records_per_task)))

    print(f"load after:  {uptime()}")
    baseline = results[0][1]
    print(f"\n{'':36s} {'wall s':>8s} {'variants/s':>12s} {'vs bcftools':>12s}")
    for label, seconds in results:
        print(f"{label:36s} {seconds:8.1f} {n_records / seconds:12,.0f} {baseline / seconds:11.2f}x")


if __name__ == "__main__":
    main()
