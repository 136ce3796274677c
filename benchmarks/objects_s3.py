"""Objects on an S3-compatible store beside local disk, in one run: htsget tickets and streaming, Beacon latency.

Usage: python benchmarks/objects_s3.py [--size-mb 200] [--tickets 200] [--queries 300] [--repeat 3]
                                      [--s3rver node_modules/.bin/s3rver]

Nodes hold the same files: one with ``objects_url`` on local disk, one on ``s3://`` served by moto's S3
server (``tests/objects_s3.py``, from PyPI), and with ``--s3rver`` one on s3rver (npm ``s3rver@3``, files on
disk).  Both are emulators on loopback, not AWS or Ceph.  moto answers a ranged GET in time proportional
to the *object's* size (it copies the whole value: 218 ms for 64 KiB of a 100 MiB object here, 5 ms of a
1 MiB one), so its streaming figures measure moto; s3rver reads only the range (9 ms either way).

Each node holds a synthetic BAM (Crypt4GH-encrypted at rest; built once under benchmarks/work/objects_s3/,
git-ignored) and a public cohort VCF whose Beacon index the ingest builds; the S3 nodes are ingested again
on every run (moto keeps objects in memory).  Every node runs as ``genoshare serve``; measured in one run:

* htsget ticket latency p50/p99 for random 10 kbp regions (the ticket reads the file's header and index);
* streaming the body of a ticket for 3/4 of the contig with curl (ranged GETs of the encrypted segments);
* Beacon allele queries p50/p99 on the cohort, over HTTP (on an S3 node the variant index is in the bucket,
  read by ranged GETs of the record batches a query touches, then cached in memory);
* the index's cold reads, in this process: each allele query with the row-group cache emptied first, so
  every one reads its record batch from local disk or from the bucket (a server's first query of a region).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pyarrow.ipc as ipc

HERE = Path(__file__).resolve().parent
WORK = HERE / "work" / "objects_s3"
sys.path.insert(0, str(HERE.parent / "tests"))

from objects_s3 import s3_server  # noqa: E402


def _htsget_bench() -> object:
    """benchmarks/htsget.py (its BAM maker, server starter and curl timer), loaded by path: ``htsget`` is a package."""
    spec = importlib.util.spec_from_file_location("htsget_bench", HERE / "htsget.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench: object = _htsget_bench()


def inputs(size: int) -> tuple[Path, Path]:
    """(BAM, cohort VCF), made once."""
    from genoshare_lab.synth import generate_cohort

    WORK.mkdir(parents=True, exist_ok=True)
    bam = WORK / "synthetic.bam"
    if not bam.exists() or bam.stat().st_size < size:
        print(f"making a {size / 1e6:.0f} MB synthetic BAM (once) ...", flush=True)
        bench.make_bam(bam, size)  # type: ignore[attr-defined]
    cohort = WORK / "cohort"
    if not (cohort / "cohort.vcf.gz").exists():
        generate_cohort(cohort, 200, 20_000_000, seed=3, n_variants=20_000)
    return bam, cohort / "cohort.vcf.gz"


def make_node(data_dir: Path, files: tuple[Path, Path], objects: dict[str, object]) -> float:
    """A node holding the BAM (dataset ``bench``) and the cohort (``cohort``); the seconds ingest took."""
    from genoshare.datasets.service import DatasetService, NewDataset
    from genoshare.node import build_ingestor, init_node
    from genoshare.settings import load_settings

    node = init_node(load_settings(data_dir, **objects))
    datasets = DatasetService(node.database)
    for name in ("bench", "cohort"):
        datasets.create(NewDataset(name, name, "bench", "public", ["NRES"], pseudonymise=False))
    began = time.perf_counter()
    build_ingestor(node).ingest("bench", [files[0]])
    build_ingestor(node).ingest("cohort", [files[1]])
    spent = time.perf_counter() - began
    node.close()
    return spent


def percentiles(seconds: list[float]) -> str:
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {statistics.median(ordered) * 1000:6.2f} ms  p99 {p99 * 1000:6.2f} ms"


def timed(n: int, call: Callable[[int], None]) -> list[float]:
    for i in range(min(20, n)):
        call(n + i)
    out = []
    for i in range(n):
        began = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - began)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=float, default=200)
    parser.add_argument("--tickets", type=int, default=200)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--s3rver", type=Path, help="the s3rver executable (npm install s3rver@3)")
    args = parser.parse_args()
    files = inputs(int(args.size_mb * 1e6))
    with tempfile.TemporaryDirectory(prefix="objects-s3-") as scratch, s3_server(Path(scratch) / "moto.log") as s3:
        stores: dict[str, tuple[dict[str, object], dict[str, str]]] = {
            "local disk": ({}, {}),
            "S3 moto": ({"objects_url": f"s3://{s3.new_bucket()}/node", "s3": s3.settings()}, s3.env()),
        }
        s3rver = start_s3rver(args.s3rver, Path(scratch) / "s3rver") if args.s3rver else None
        try:
            if s3rver is not None:
                stores["S3 s3rver"] = (s3rver, {"GENOSHARE_S3__SECRET_ACCESS_KEY": "S3RVER"})
            run(args, files, Path(scratch), stores)
        finally:
            for process in _s3rver_processes:
                process.terminate()
                process.wait(timeout=20)


_s3rver_processes: list[subprocess.Popen[bytes]] = []


def start_s3rver(executable: Path, root: Path) -> dict[str, object]:
    """s3rver on loopback with a bucket; the node's settings for it (s3rver's fixed S3RVER credentials)."""
    import boto3
    from botocore.config import Config
    from pydantic import SecretStr

    from genoshare.settings import S3Settings

    root.mkdir()
    port = bench.free_port()  # type: ignore[attr-defined]
    endpoint = f"http://127.0.0.1:{port}"
    command = [str(executable), "-d", str(root), "-a", "127.0.0.1", "-p", str(port), "--silent"]
    _s3rver_processes.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    config = Config(request_checksum_calculation="when_required", response_checksum_validation="when_required")
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="S3RVER",
        aws_secret_access_key="S3RVER",
        config=config,
    )
    for _ in range(100):
        try:
            client.create_bucket(Bucket="genoshare-bench")
            break
        except Exception:  # not listening yet
            time.sleep(0.2)
    secret = SecretStr("S3RVER")
    settings = S3Settings(endpoint_url=endpoint, region="us-east-1", access_key_id="S3RVER", secret_access_key=secret)
    return {"objects_url": "s3://genoshare-bench/node", "s3": settings}


def cold_index_reads(name: str, data_dir: Path, objects: dict[str, object], alleles: list, n: int) -> None:
    """Allele queries on the node's index with an empty row-group cache each time: a read from disk or S3."""
    from genoshare.index.serving import IndexSource, VariantIndex
    from genoshare.index.stored import stored_index
    from genoshare.settings import S3Settings
    from genoshare.store.objects import create_object_store

    source: IndexSource | list = next(data_dir.glob("beacon/cohort/*/variants.arrow"), data_dir)
    if "objects_url" in objects:
        settings = objects["s3"]
        assert isinstance(settings, S3Settings)
        store = create_object_store(str(objects["objects_url"]), settings, data_dir / "scratch")
        [key] = [k for k in store.keys("beacon/cohort/") if k.endswith("/variants.arrow")]
        source = stored_index(store, key.removesuffix("/variants.arrow"))
    began = time.perf_counter()
    index = VariantIndex({"cohort": source})
    opened = (time.perf_counter() - began) * 1000

    def ask(i: int) -> None:
        index.datasets.clear()
        row = alleles[i]
        index.sequence_query("20", row["start"], row["alt"], row["ref"]).rows()

    print(f"{name:11} index, cold    {percentiles(timed(n, ask))}  (footer: {opened:.0f} ms)", flush=True)


def run(
    args: argparse.Namespace,
    files: tuple[Path, Path],
    scratch: Path,
    stores: dict[str, tuple[dict[str, object], dict[str, str]]],
) -> None:
    servers, urls = {}, {}
    try:
        for name, (objects, secret) in stores.items():
            data_dir = scratch / name.replace(" ", "-")
            print(f"{name:11} ingest (BAM + cohort): {make_node(data_dir, files, objects):6.1f} s", flush=True)
            port = bench.free_port()  # type: ignore[attr-defined]
            urls[name] = url = f"http://127.0.0.1:{port}"
            serve = [sys.executable, "-m", "genoshare", "serve", "--data-dir", str(data_dir), "--port", str(port)]
            env = {"GENOSHARE_PUBLIC_URL": url, **secret}
            servers[name] = bench.start(serve, f"{url}/service-info", env)  # type: ignore[attr-defined]
        index = next((scratch / "local-disk").glob("beacon/cohort/*/variants.arrow"))
        table = ipc.open_file(index).read_all().select(["start", "ref", "alt", "carrier_count"]).to_pylist()
        rng = random.Random(5)
        alleles = [rng.choice([row for row in table if row["carrier_count"] > 0]) for _ in range(args.queries + 20)]
        regions = [rng.randrange(0, 190_000_000) for _ in range(args.tickets + 20)]
        for name, url in urls.items():
            with httpx.Client(base_url=url, timeout=120) as client:

                def ticket(i: int, client: httpx.Client = client) -> None:
                    params = {"referenceName": "chr1", "start": regions[i], "end": regions[i] + 10_000}
                    client.get("/htsget/reads/synthetic", params=params).raise_for_status()

                def allele(i: int, client: httpx.Client = client) -> None:
                    row = alleles[i]
                    params = {"referenceName": "20", "start": row["start"], "referenceBases": row["ref"]}
                    client.get("/api/g_variants", params={**params, "alternateBases": row["alt"]}).raise_for_status()

                print(f"{name:11} htsget ticket  {percentiles(timed(args.tickets, ticket))}", flush=True)
                print(f"{name:11} Beacon allele  {percentiles(timed(args.queries, allele))}", flush=True)
        for name, (objects, _) in stores.items():
            cold_index_reads(name, scratch / name.replace(" ", "-"), objects, alleles, args.queries)
        rates: dict[str, list[float]] = {name: [] for name in urls}
        for _ in range(args.repeat):
            for name, url in urls.items():
                slice_ = {"referenceName": "chr1", "start": 0, "end": 150_000_000}
                answer = httpx.get(f"{url}/htsget/reads/synthetic", params=slice_, timeout=120).json()
                size, seconds = bench.stream_ticket(answer)  # type: ignore[attr-defined]
                rates[name].append(size / seconds / 1e6)
        for name, measured in rates.items():
            print(f"{name:11} streaming      {statistics.median(measured):7.1f} MB/s (median of {args.repeat})")
        print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores (a shared machine)")
    finally:
        for process in servers.values():
            process.terminate()
            process.wait(timeout=20)


if __name__ == "__main__":
    main()
