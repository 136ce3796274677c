"""htsget through a real node: ticket latency and streaming throughput on a >= 1 GB BAM, beside two baselines.

Usage: python benchmarks/htsget.py [--tickets 1000] [--repeat 3] [--size-gb 1.05]

Builds once (cached under benchmarks/work/htsget/, git-ignored) a coordinate-sorted BAM of synthetic reads
and a node holding it (Crypt4GH-encrypted at rest, as every node file), then starts ``genoshare serve`` and,
on the same uvicorn stack (httptools), a bare ASGI app streaming the plaintext BAM in 1 MiB chunks.

Measured in one run, so the ratios are meaningful on a noisy machine (FLOORS.md):

* ticket latency p50/p99 over --tickets GET tickets for random 10 kbp regions (httpx, keep-alive);
* streaming a large slice (the body range of a whole-chromosome ticket) with curl: decrypted from
  Crypt4GH at rest, and re-encrypted to a client key (stored segments under a re-keyed header);
* baselines: ``cat file > /dev/null`` on the plaintext BAM, and the bare ASGI app (the HTTP ceiling);
* the cipher's ceiling: ``EncryptedFile.iter_plaintext`` over the same slice in this process, and the
  rate that decrypting and then sending each piece in turn gives (the node's process does both, and they
  overlapped little here: the cipher runs holding the GIL).

Throughputs are medians of --repeat runs with the page cache warm.
"""

from __future__ import annotations

import argparse
import base64
import os
import random
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

WORK = Path(__file__).resolve().parent / "work" / "htsget"
CHUNK = 1 << 20
CONTIG_LENGTH = 200_000_000
READ_LENGTH = 250


def make_bam(path: Path, size: int) -> None:
    """Sorted synthetic reads with random bases and qualities (so they compress like real data)."""
    import numpy as np
    import pysam

    rng = np.random.default_rng(7)
    pool = 65_536
    seqs = ["".join(row) for row in np.array(list("ACGT"))[rng.integers(0, 4, (pool, READ_LENGTH))]]
    quals = [
        pysam.qualitystring_to_array("".join(row))
        for row in np.array([chr(33 + q) for q in range(2, 41)])[rng.integers(0, 39, (pool, READ_LENGTH))]
    ]
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": CONTIG_LENGTH}]}
    tmp = path.with_suffix(".part")
    reads = int(size / 250) + 1  # ~250 compressed bytes per read
    positions = np.sort(rng.integers(0, CONTIG_LENGTH - READ_LENGTH, reads))
    with pysam.AlignmentFile(str(tmp), "wb", header=header, threads=2) as out:
        for number, start in enumerate(positions.tolist()):
            read = pysam.AlignedSegment(out.header)
            read.query_name = f"r{number}"
            read.reference_id = 0
            read.reference_start = start
            read.mapping_quality = 60
            read.cigarstring = f"{READ_LENGTH}M"
            read.query_sequence = seqs[number % pool]
            read.query_qualities = quals[(number * 7919) % pool]
            out.write(read)
    tmp.rename(path)


def prepare(size: int) -> tuple[Path, Path]:
    """(plaintext BAM, node data directory), built once."""
    from genoshare.datasets.service import DatasetService, NewDataset
    from genoshare.ingest.pipeline import Ingestor
    from genoshare.node import init_node
    from genoshare.settings import load_settings

    WORK.mkdir(parents=True, exist_ok=True)
    bam = WORK / "synthetic.bam"
    if not bam.exists() or bam.stat().st_size < size:
        print(f"making a {size / 1e9:.2f} GB synthetic BAM (once) ...", flush=True)
        make_bam(bam, size)
    data_dir = WORK / "node"
    if not (data_dir / "ingested").exists():
        print("ingesting it into a node (once) ...", flush=True)
        node = init_node(load_settings(data_dir))
        datasets = DatasetService(node.database)
        if not any(d.id == "bench" for d in datasets.list()):
            datasets.create(
                NewDataset(
                    id="bench",
                    title="bench",
                    custodian="bench",
                    access_level="public",
                    duo_codes=["NRES"],
                    pseudonymise=False,
                )
            )
        Ingestor(node).ingest("bench", [bam])
        node.close()
        (data_dir / "ingested").touch()
    return bam, data_dir


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start(args: list[str], url: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        args, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=1)
            return process
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"{args} did not start")


def bare_app(path: Path, port: int) -> None:
    """The HTTP ceiling: an ASGI app with no framework streaming ``path`` in 1 MiB chunks."""
    import uvicorn

    async def app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http":
            return
        size = path.stat().st_size
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", str(size).encode())]})  # type: ignore[operator]
        with open(path, "rb") as handle:
            while piece := handle.read(CHUNK):
                await send({"type": "http.response.body", "body": piece, "more_body": True})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", http="httptools")


def curl(url: str, headers: dict[str, str]) -> tuple[int, float]:
    command = ["curl", "-s", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    size, seconds = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
    return int(size), float(seconds)


def stream_ticket(ticket: dict) -> float:
    """GB/s over the ticket's byte-range URLs (the bulk of a large slice)."""
    total, seconds = 0, 0.0
    for entry in ticket["htsget"]["urls"]:
        if entry["url"].startswith("http"):
            size, spent = curl(entry["url"], entry.get("headers", {}))
            total, seconds = total + size, seconds + spent
    return total / seconds / 1e9


def median_rate(repeat: int, measure: object) -> float:
    measure()  # type: ignore[operator]  # warm the page cache and the server
    return statistics.median(measure() for _ in range(repeat))  # type: ignore[operator]


def cat_rate(path: Path) -> float:
    began = time.perf_counter()
    subprocess.run(f"cat '{path}' > /dev/null", shell=True, check=True)
    return path.stat().st_size / (time.perf_counter() - began) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--size-gb", type=float, default=1.05)
    parser.add_argument("--bare-app", nargs=2, metavar=("FILE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_app:
        bare_app(Path(args.bare_app[0]), int(args.bare_app[1]))
        return
    bam, data_dir = prepare(int(args.size_gb * 1e9))
    node_port, bare_port = free_port(), free_port()
    node_url = f"http://127.0.0.1:{node_port}"
    server = start(
        [sys.executable, "-m", "genoshare", "serve", "--data-dir", str(data_dir), "--port", str(node_port)],
        f"{node_url}/service-info",
        {"GENOSHARE_PUBLIC_URL": node_url},
    )
    bare = start([sys.executable, __file__, "--bare-app", str(bam), str(bare_port)], f"http://127.0.0.1:{bare_port}/x")
    try:
        run(args, bam, data_dir, node_url, f"http://127.0.0.1:{bare_port}/file")
    finally:
        for process in (server, bare):
            process.terminate()
            process.wait(timeout=20)


def decrypt_rate(data_dir: Path, start: int, end: int) -> float:
    """GB/s of ``EncryptedFile.iter_plaintext`` over ``[start, end)`` of the stored BAM, in this process."""
    from genoshare.crypt.files import EncryptedFile
    from genoshare.node import Node
    from genoshare.settings import load_settings
    from genoshare.store.models import DataObject

    node = Node.open(load_settings(data_dir))
    try:
        with node.database.sessions() as session:
            row = session.query(DataObject).filter_by(htsget_id="synthetic").one()
        with EncryptedFile(node.objects.local_path(row.blob_key), node.keys.secret) as file:
            began = time.perf_counter()
            for _ in file.iter_plaintext(start, end, CHUNK):
                pass
            return (end - start) / (time.perf_counter() - began) / 1e9
    finally:
        node.close()


def run(args: argparse.Namespace, bam: Path, data_dir: Path, node_url: str, bare_url: str) -> None:
    keys = Path(__file__).resolve().parents[1] / "src/genoshare/demo/data/htsget/c4gh/keys"
    c4gh = {"Htsget-Context-Public-Key": base64.b64encode((keys / "bob.pub").read_bytes()).decode()}
    reads = f"{node_url}/htsget/reads/synthetic"
    rng = random.Random(1)
    latencies = []
    with httpx.Client(timeout=30) as client:
        for _ in range(50):
            client.get(reads, params={"referenceName": "chr1", "start": 1000, "end": 2000}).raise_for_status()
        for _ in range(args.tickets):
            start = rng.randrange(0, CONTIG_LENGTH - 10_000)
            began = time.perf_counter()
            response = client.get(reads, params={"referenceName": "chr1", "start": start, "end": start + 10_000})
            latencies.append(time.perf_counter() - began)
            response.raise_for_status()
        c4gh_latencies = []
        for _ in range(max(args.tickets // 5, 50)):
            start = rng.randrange(0, CONTIG_LENGTH - 10_000)
            params = {"referenceName": "chr1", "start": start, "end": start + 10_000, "encryptionScheme": "C4GH"}
            began = time.perf_counter()
            client.get(reads, params=params, headers=c4gh).raise_for_status()
            c4gh_latencies.append(time.perf_counter() - began)
        # A large slice: the first 3/4 of the contig (most of the file), as one or a few body ranges.
        slice_params = {"referenceName": "chr1", "start": 0, "end": CONTIG_LENGTH * 3 // 4}
        plain = client.get(reads, params=slice_params).json()
        sealed = client.get(reads, params={**slice_params, "encryptionScheme": "C4GH"}, headers=c4gh).json()

    def quantile(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1e3

    cat = median_rate(args.repeat, lambda: cat_rate(bam))
    ceiling = median_rate(args.repeat, lambda: (lambda s, t: s / t / 1e9)(*curl(bare_url, {})))
    decrypting = median_rate(args.repeat, lambda: stream_ticket(plain))
    reencrypted = median_rate(args.repeat, lambda: stream_ticket(sealed))
    ranges = [
        (int(e["headers"]["Range"][6:].split("-")[0]), int(e["headers"]["Range"].split("-")[1]) + 1)
        for e in plain["htsget"]["urls"]
        if "headers" in e
    ]
    size = sum(end - start for start, end in ranges)
    body = max(ranges, key=lambda span: span[1] - span[0])
    cipher = median_rate(args.repeat, lambda: decrypt_rate(data_dir, *body))
    serial = 1 / (1 / cipher + 1 / ceiling)
    print(f"\nBAM {bam.stat().st_size / 1e9:.2f} GB; slice {size / 1e9:.2f} GB; {args.tickets} tickets")
    print(
        f"ticket latency (plain)   p50 {quantile(latencies, 0.5):6.2f} ms   p99 {quantile(latencies, 0.99):6.2f} ms"
        f"   target p50 < 5 ms"
    )
    print(
        f"ticket latency (C4GH)    p50 {quantile(c4gh_latencies, 0.5):6.2f} ms   "
        f"p99 {quantile(c4gh_latencies, 0.99):6.2f} ms"
    )
    print(f"cat file > /dev/null          {cat:6.2f} GB/s")
    print(f"bare ASGI, 1 MiB chunks        {ceiling:6.2f} GB/s   (HTTP ceiling, curl client)")
    print(f"node, decrypted from C4GH     {decrypting:6.2f} GB/s   {decrypting / ceiling:5.2f}x ceiling")
    print(f"  in-process decryption       {cipher:6.2f} GB/s   {cipher / ceiling:5.2f}x ceiling   (cipher ceiling)")
    print(f"  decrypt, then send, serial  {serial:6.2f} GB/s   {serial / ceiling:5.2f}x ceiling   (taking turns)")
    print(
        f"node, re-encrypted to client  {reencrypted:6.2f} GB/s   {reencrypted / ceiling:5.2f}x ceiling"
        f"   target >= 0.8x"
    )


if __name__ == "__main__":
    main()
