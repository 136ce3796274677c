"""Beacon allele queries on a 10^8-variant x 10^3-sample index, reading only the record batches a query touches.

    python benchmarks/index_scale.py [--variants 100000000] [--samples 1000] [--queries 2000] [--cache-mb 256]

The index is synthetic, written straight into the node's layout by ``genoshare_lab.synth.index_layout``
(a power-law allele-count spectrum, 61% singletons) and cached under benchmarks/work/index_scale/
(~9.6 GB at 10^8 in the Arrow layout, ~1.4 GB in the Parquet one; ~20 min to generate on this machine,
once; a cached Parquet index is converted instead, ~5 min). Each configuration runs in its own child
process, so its memory is its own; in one run:

* ``arrow``: the 10^8 index in the node's layout (memory-mapped Arrow file, `genoshare.index.serving`),
  with an LRU of ``--cache-mb`` of record batches, cold (a fresh process);
* ``parquet``: the same 10^8 rows in the layout before (Parquet row groups of 8,192, zstd), served by the
  same server's reader of such indexes, cold, with the same cache: the baseline;
* ``in memory``: a 10^6 index whose batches are all read before timing;
* ``pyarrow filter``: the same 10^8 queries as ``pq.read_table(filters=...)`` on the Parquet file, pyarrow's
  own row-group pruning on its statistics, opening the file each time (what a naive reader does).

Each row has a second line: the CPU time (all threads of the process) per query, p50/p99: on this shared
2-core machine wall-clock percentiles measure the other work on it as much as the index. ``uptime`` is
printed before and after.

Queries: random present alleles (a random row's contig, start, REF and ALT) and random absent ones
(a uniform position with an ALT of ``N``-free bases that is not there), each answered with its rows and
its carrier count within a random 30% of the samples. Figures are p50/p99 over ``--queries`` of each.
Memory: peak RSS, and at the end the anonymous part of RSS (what the process holds, which the cache and
the directory bound) beside the file-backed part (the index's pages it has mapped: page cache, which the
kernel drops under pressure, and the libraries).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lab" / "src"))

WORK = Path(__file__).resolve().parent / "work" / "index_scale"


def cached_index(n_variants: int, n_samples: int, seed: int, alpha: float) -> Path:
    """The synthetic index's file, written once (in a folder named by its parameters).

    A folder that holds only the Parquet layout (written by this benchmark before the Arrow one) is
    converted, batch by batch: the generator is deterministic, so those are the rows it would write.
    """
    from genoshare_lab.synth.index_layout import write_synthetic_index

    folder = WORK / f"synthetic-{n_samples}x{n_variants}-seed{seed}-alpha{alpha:g}"
    path = folder / "variants.arrow"
    manifest = folder / "generation.json"
    if manifest.exists() and path.exists():
        generated = json.loads(manifest.read_text())
        print(f"index {path.relative_to(WORK.parent)}: cached (written in {generated['seconds']:.0f} s)", flush=True)
        return path
    folder.mkdir(parents=True, exist_ok=True)
    if manifest.exists() and (folder / "variants.parquet").exists():
        print(f"converting the cached Parquet {n_variants:,} x {n_samples:,} index to the Arrow layout (once) ...")
        began = time.perf_counter()
        convert(folder / "variants.parquet", path)
        print(f"  {time.perf_counter() - began:.0f} s, {path.stat().st_size / 1e9:.2f} GB", flush=True)
        return path
    print(f"writing a {n_variants:,} x {n_samples:,} synthetic index (once) ...", flush=True)
    made = write_synthetic_index(path, n_variants, n_samples, seed=seed, alpha=alpha)
    record = {"seconds": made.seconds, "rows": made.n_rows, "singletons": made.singletons}
    manifest.write_text(json.dumps(record))
    print(f"  {made.seconds:.0f} s, {path.stat().st_size / 1e9:.2f} GB, {made.singletons / made.n_rows:.0%} singletons")
    return path


def convert(parquet: Path, arrow: Path) -> None:
    """The rows of a Parquet-layout index (``genoshare-variant-index/1``) written in the Arrow layout."""
    from genoshare.index.schema import FORMAT, METADATA_KEY, IndexWriter

    source = pq.ParquetFile(parquet)
    metadata = json.loads(source.schema_arrow.metadata[METADATA_KEY]) | {"format": FORMAT}
    partial = arrow.with_name(arrow.name + ".partial")
    with IndexWriter(partial, json.dumps(metadata)) as writer:
        for group in range(source.metadata.num_row_groups):
            for batch in source.read_row_group(group).to_batches():
                writer.add(batch)
    partial.replace(arrow)


def pick_queries(path: Path, n: int, seed: int) -> dict[str, list[tuple[str, int, str, str]]]:
    """Present alleles (random rows of random batches) and absent ones (random positions, checked absent)."""
    rng = random.Random(seed)
    arrow = ipc.open_file(pa.memory_map(str(path)))
    batches = arrow.num_record_batches
    present = []
    for batch in sorted(rng.randrange(batches) for _ in range(n)):
        rows = arrow.get_batch(batch).select(["contig", "start", "ref", "alt"])
        row = rows.slice(rng.randrange(rows.num_rows), 1).to_pylist()[0]
        present.append((row["contig"], row["start"], row["ref"], row["alt"]))
    rng.shuffle(present)
    absent = []
    known = set(present)
    for contig, start, ref, _ in present:  # same contigs and spread; a position the index has no such allele at
        position = rng.randrange(max(0, start - 5_000_000), start + 5_000_000)
        candidate = (contig, position, ref, "ACGTTGCA")  # an 8-base insertion the generator never writes
        if candidate not in known:
            absent.append(candidate)
    return {"present": present, "absent": absent}


def memory() -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    mb = {key: int(status[key].split()[0]) / 1024 for key in ("VmHWM", "RssAnon", "RssFile")}
    mb["peak"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return mb


def percentiles(ms: list[float]) -> tuple[float, float]:
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def measure(args: argparse.Namespace) -> None:
    """One configuration, in this (child) process: JSON on stdout."""
    from pyroaring import BitMap

    from genoshare.index.serving import VariantIndex

    queries = json.loads(Path(args.queries_file).read_text())
    allowed = BitMap(random.Random(7).sample(range(args.samples), int(0.3 * args.samples)))
    out: dict[str, object] = {"config": args.measure}
    began = time.perf_counter()
    served = args.measure != "pyarrow filter"
    if not served:
        path = args.index

        def ask(contig: str, start: int, ref: str, alt: str) -> int:
            filters = [("contig", "=", contig), ("start", "=", start), ("ref", "=", ref), ("alt", "=", alt)]
            return pq.read_table(path, filters=filters, columns=["carrier_count"]).num_rows

        count = ask
    else:
        cache = 1 << 62 if args.measure == "in memory" else args.cache_mb * 1024 * 1024
        index = VariantIndex({"cohort": Path(args.index)}, cache_bytes=cache)
        out["row_groups"] = len(index.datasets)
        if args.measure == "in memory":
            for position in range(len(index.datasets)):
                index.datasets[position].run_union(0)  # loaded, as the node did before
        out["open_seconds"] = time.perf_counter() - began

        def ask(contig: str, start: int, ref: str, alt: str) -> int:
            result = index.sequence_query(contig, start, alt, ref)
            result.rows()
            return result.carrier_count(allowed)

        count = ask
    out["memory_after_open"] = memory()
    for kind in ("present", "absent"):
        loads_before = index.datasets.loads if served else 0
        times, cpu, found = [], [], 0
        for contig, start, ref, alt in queries[kind][: args.n]:
            began, began_cpu = time.perf_counter_ns(), time.process_time_ns()
            found += count(contig, start, ref, alt) > 0 or not served
            cpu.append((time.process_time_ns() - began_cpu) / 1e6)
            times.append((time.perf_counter_ns() - began) / 1e6)
        out[kind] = {"p50_p99": percentiles(times), "cpu": percentiles(cpu), "n": len(times), "found": found}
        if served:
            out[kind]["row_groups_read"] = index.datasets.loads - loads_before  # type: ignore[index]
    if served:
        out["cached_mb"] = index.datasets.cached_bytes / 1024 / 1024
    out["arrow_mb"] = pa.total_allocated_bytes() / 1024 / 1024
    out["memory"] = memory()
    print(json.dumps(out))


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", type=int, default=100_000_000)
    parser.add_argument("--baseline-variants", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--queries", type=int, default=2000, help="present and absent alleles, each")
    parser.add_argument("--filter-queries", type=int, default=100, help="for the (slow) pyarrow filter baseline")
    parser.add_argument("--cache-mb", type=int, default=256)
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--index", help=argparse.SUPPRESS)
    parser.add_argument("--queries-file", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args)
        return

    big = cached_index(args.variants, args.samples, args.seed, args.alpha)
    small = cached_index(args.baseline_variants, args.samples, args.seed, args.alpha)
    parquet = big.with_name("variants.parquet")  # the layout before, written by this benchmark's earlier versions
    batches = ipc.open_file(pa.memory_map(str(big))).num_record_batches
    print(f"  Arrow {big.stat().st_size / 1e9:.2f} GB on disk, {batches:,} record batches")
    runs = [("arrow", big, args.queries)]
    if parquet.exists():
        groups = pq.ParquetFile(parquet).metadata.num_row_groups
        print(f"  Parquet (the layout before) {parquet.stat().st_size / 1e9:.2f} GB on disk, {groups:,} row groups")
        runs += [("parquet", parquet, args.queries)]
    runs += [("in memory", small, args.queries)]
    if parquet.exists():
        runs += [("pyarrow filter", parquet, args.filter_queries)]
    files = {}
    for _, path, _ in runs:
        folder = path.parent
        if folder not in files:
            files[folder] = WORK / f"queries-{folder.name}-{args.queries}.json"
            if not files[folder].exists():
                files[folder].write_text(json.dumps(pick_queries(folder / "variants.arrow", args.queries, args.seed)))
    print(f"before: {uptime()} ({os.cpu_count()} cores)", flush=True)
    columns = ("rows", "present p50 / p99", "absent p50 / p99", "groups/q", "peak RSS", "anon", "file")
    print(
        f"{'':16} {columns[0]:>12} {columns[1]:>20} {columns[2]:>20} {columns[3]:>9} {columns[4]:>9}"
        f" {columns[5]:>7} {columns[6]:>7}"
    )
    for config, path, n in runs:
        command = [sys.executable, __file__, "--measure", config, "--index", str(path)]
        command += ["--queries-file", str(files[path.parent]), "--n", str(n), "--samples", str(args.samples)]
        command += ["--cache-mb", str(args.cache_mb)]
        result = json.loads(subprocess.run(command, check=True, capture_output=True, text=True).stdout)
        rows = int(path.parent.name.split("x")[1].split("-")[0])
        present, absent = result["present"], result["absent"]
        read = (present.get("row_groups_read", 0) + absent.get("row_groups_read", 0)) / (present["n"] + absent["n"])
        mem = result["memory"]
        print(
            f"{config:16} {rows:>12,} {present['p50_p99'][0]:8.2f} / {present['p50_p99'][1]:6.2f} ms"
            f" {absent['p50_p99'][0]:8.2f} / {absent['p50_p99'][1]:6.2f} ms {read:9.2f}"
            f" {mem['peak']:6.0f} MB {mem['RssAnon']:4.0f} MB {mem['RssFile']:4.0f} MB",
            flush=True,
        )
        print(  # CPU time of the process (all its threads) per query: what an idle core would take
            f"{'  CPU time':16} {'':>12} {present['cpu'][0]:8.2f} / {present['cpu'][1]:6.2f} ms"
            f" {absent['cpu'][0]:8.2f} / {absent['cpu'][1]:6.2f} ms",
            flush=True,
        )
        if config in ("arrow", "parquet"):
            after_open = result["memory_after_open"]
            print(
                f"{'':16} opened in {result['open_seconds']:.2f} s (RSS {after_open['VmHWM']:.0f} MB,"
                f" anon {after_open['RssAnon']:.0f} MB); the cache ended holding"
            )
            held = f"{result['cached_mb']:.0f} MB of batches (limit {args.cache_mb} MB)"
            print(f"{'':16} {held}; Arrow allocated {result['arrow_mb']:.0f} MB in all")
    print(f"after: {uptime()} (a shared machine)")


if __name__ == "__main__":
    main()
