"""Ingest on Spark beside the embedded ingest and `bcftools view -Ou`, on one generated multi-sample file.

    python benchmarks/spark_ingest.py                       # 1,000 people x 200,000 variants, a few minutes
    python benchmarks/spark_ingest.py --variants 50000      # a quick look
    python benchmarks/spark_ingest.py --shards 8 --jobs 1 2  # the embedded ingest of 8 files, 1 and 2 at once

Rows, in variants (VCF records) per second and wall time:
  * `bcftools view -Ou` of the file to /dev/null: the baseline, parsing alone;
  * the embedded Beacon index build (`build_variant_index`, what `genoshare ingest` runs);
  * the Spark index build (`genoshare ingest --engine spark`) in local mode on 1 and on 2 workers, the
    session already started (its start-up is shown on its own line), `--records-per-task` records a task;
  * the whole `genoshare ingest` (validate, pseudonymise, encrypt, publish, index) with each engine once.
The Spark builds are checked to write the same rows as the embedded one. With `--shards N` it measures
instead the embedded `genoshare ingest` of the cohort cut into N files by position (a biobank's region
shards) with each `--jobs` (files staged at once in worker processes): wall time, files/s, MB/s of input,
the CPU seconds of the ingest and its workers, and the seconds until the Beacon index builds began (staging
and publishing, which the workers share; the index builds follow one file after another). The cohort
(msprime, most variants rare) and its shards are cached under benchmarks/work/spark_ingest/; `uptime` is
printed before and after, since a shared machine's load moves every figure.
"""

from __future__ import annotations

import argparse
import json
import resource
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


def shards(source: Path, count: int) -> list[Path]:
    """``source`` cut into ``count`` files of equal position ranges (records by where they start)."""
    folder = source.parent / f"shards-{count}"
    paths = [folder / f"shard{number:03d}.vcf.gz" for number in range(count)]
    if all(path.exists() for path in paths):
        return paths
    folder.mkdir(exist_ok=True)
    positions = subprocess.run(
        ["bcftools", "query", "-f", "%CHROM\t%POS\n", str(source)], capture_output=True, text=True, check=True
    ).stdout.split()
    contig, first, last = positions[0], int(positions[1]), int(positions[-1])
    step = (last - first) // count + 1
    for number, path in enumerate(paths):
        region = f"{contig}:{first + number * step}-{first + (number + 1) * step - 1}"
        options = ["--no-version", "-r", region, "--regions-overlap", "pos", "-Oz", "-o", str(path)]
        subprocess.run(["bcftools", "view", *options, str(source)], check=True)
    return paths


def whole_ingest(
    sources: list[Path], engine: str, workers: int, records_per_task: int, jobs: int = 1
) -> tuple[float, float, float]:
    """Wall and CPU seconds (this process and its workers) of one ``genoshare ingest`` of ``sources``, and the
    wall seconds until its Beacon index builds began (staging and publishing: what ``jobs`` spreads)."""
    with tempfile.TemporaryDirectory(dir=WORK) as scratch:
        settings = load_settings(
            Path(scratch) / "node",
            environment="test",
            spark={"master": f"local[{workers}]", "records_per_task": records_per_task},
        )
        node = init_node(settings)
        DatasetService(node.database).create(NewDataset("cohort", "Cohort", "Bench", "controlled", ["GRU"]))
        copies = []
        for source in sources:
            copies.append(Path(scratch) / f"{source.name.split('.')[0]}-{engine}{''.join(source.suffixes)}")
            shutil.copyfile(source, copies[-1])
        if engine == "spark":  # started before the clock, as a long-running cluster would be
            spark_session(f"local[{workers}]", {}).sparkContext.parallelize(range(workers), workers).count()
        before, began, indexing = cpu_seconds(), time.perf_counter(), []

        def progress(name: str, stage: str, done: int, total: int) -> None:
            if stage == "index" and not indexing:
                indexing.append(time.perf_counter() - began)

        try:
            ingestor = build_ingestor(node, engine)  # type: ignore[arg-type]
            wall = timed(lambda: ingestor.ingest("cohort", copies, progress, jobs=jobs))
            return wall, cpu_seconds() - before, (indexing or [wall])[0]
        finally:
            node.close()


def cpu_seconds() -> float:
    """User and system CPU time of this process and of its children that have ended (the ingest's workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def compare_jobs(source: Path, count: int, jobs: list[int], records_per_task: int) -> None:
    paths = shards(source, count)
    size = sum(path.stat().st_size for path in paths)
    print(f"{count} shards, {size / 1e6:.1f} MB in all; load before: {uptime()}")
    print(f"{'':10s} {'wall s':>8s} {'files/s':>8s} {'MB/s':>7s} {'CPU s':>7s} {'staged s':>9s}  load after")
    for job_count in jobs:
        wall, cpu, staged = whole_ingest(paths, "embedded", 1, records_per_task, job_count)
        load = uptime().rsplit("load average: ", 1)[-1]
        rates = f"{count / wall:8.2f} {size / 1e6 / wall:7.2f}"
        print(f"--jobs {job_count:<3d} {wall:8.1f} {rates} {cpu:7.1f} {staged:9.1f}  {load}")


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
    parser.add_argument("--shards", type=int, default=0, help="instead: the embedded ingest of N files, by --jobs")
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2], help="with --shards: files staged at once")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    source = cohort(args.individuals, args.variants, args.seed, args.format)
    if args.shards:
        vcf = cohort(args.individuals, args.variants, args.seed, "vcf")
        compare_jobs(vcf, args.shards, args.jobs, args.records_per_task)
        return
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
        embedded = whole_ingest([source], "embedded", 1, args.records_per_task)[0]
        results.append(("genoshare ingest, embedded", embedded))
        spark = whole_ingest([source], "spark", 2, args.records_per_task)[0]
        results.append(("genoshare ingest, spark local[2]", spark))

    print(f"load after:  {uptime()}")
    baseline = results[0][1]
    print(f"\n{'':36s} {'wall s':>8s} {'variants/s':>12s} {'vs bcftools':>12s}")
    for label, seconds in results:
        print(f"{label:36s} {seconds:8.1f} {n_records / seconds:12,.0f} {baseline / seconds:11.2f}x")


if __name__ == "__main__":
    main()
