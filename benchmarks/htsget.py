"""htsget through a real node: ticket latency and streaming throughput on a >= 1 GB BAM, beside two baselines.

Usage: python benchmarks/htsget.py [--tickets 1000] [--repeat 5] [--size-gb 1.05]

Builds once (cached under benchmarks/work/htsget/, git-ignored) a coordinate-sorted BAM of synthetic reads
and a node holding it twice: Crypt4GH-encrypted at rest (id ``synthetic``, dataset ``bench``), and as plain
bytes in a public dataset created with ``--store-plaintext`` (id ``synthetic_plain``, dataset
``bench-plain``).  Then starts ``genoshare serve`` and, on the same uvicorn stack (httptools), a bare ASGI
app streaming the plaintext BAM in 1 MiB chunks.

Measured in one run, so the ratios are meaningful on a noisy machine:

* ticket latency p50/p99 over --tickets GET tickets for random 10 kbp regions (httpx, keep-alive);
* streaming a large slice (the body range of a ticket for 3/4 of the contig) with curl: plaintext at rest,
  decrypted from Crypt4GH at rest, and re-encrypted to a client key (stored segments
  under a re-keyed header);
* baselines: ``cat file > /dev/null`` on the plaintext BAM, and the bare ASGI app (the HTTP ceiling);
* the cipher's ceiling: ``EncryptedFile.iter_plaintext`` over the same slice in this process, and the
  rate that decrypting and then sending each piece in turn would give (what a cipher holding the GIL
  allows; the node's releases it, so it may beat this bound).

Every rate is printed with its ratio to both baselines and the CPU time the serving process spent per GB (the
in-process cipher: this process), and the load average at the end.

Throughputs are medians of --repeat rounds with the page cache warm; in each round every stream is measured
once, and a ratio is the median of the ratios within rounds (the load of a shared machine drifts).
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
from collections.abc import Callable
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
    from genoshare.node import build_ingestor, init_node
    from genoshare.settings import load_settings

    WORK.mkdir(parents=True, exist_ok=True)
    bam = WORK / "synthetic.bam"
    if not bam.exists() or bam.stat().st_size < size:
        print(f"making a {size / 1e9:.2f} GB synthetic BAM (once) ...", flush=True)
        make_bam(bam, size)
    data_dir = WORK / "node"
    for marker, dataset_id, plaintext in (("ingested", "bench", False), ("ingested-plain", "bench-plain", True)):
        if (data_dir / marker).exists():
            continue
        print(f"ingesting it into a node as {dataset_id} (once) ...", flush=True)
        node = init_node(load_settings(data_dir))  # also migrates a node made by an older version
        datasets = DatasetService(node.database)
        if not any(d.id == dataset_id for d in datasets.list()):
            datasets.create(
                NewDataset(
                    id=dataset_id,
                    title=dataset_id,
                    custodian="bench",
                    access_level="public",
                    duo_codes=["NRES"],
                    pseudonymise=False,
                    store_plaintext=plaintext,
                )
            )
        source = bam
        if plaintext:
            # htsget ids are node-wide: the same file under another name.
            source = WORK / "synthetic_plain.bam"
            source.unlink(missing_ok=True)
            os.link(bam, source)
        build_ingestor(node).ingest(dataset_id, [source])
        node.close()
        (data_dir / marker).touch()
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


def stream_ticket(ticket: dict) -> tuple[int, float]:
    """(bytes, seconds) over the ticket's byte-range URLs (the bulk of a large slice)."""
    total, seconds = 0, 0.0
    for entry in ticket["htsget"]["urls"]:
        if entry["url"].startswith("http"):
            size, spent = curl(entry["url"], entry.get("headers", {}))
            total, seconds = total + size, seconds + spent
    return total, seconds


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


#: A measure: a callable returning (bytes, seconds), and the process whose CPU it costs (None: not measured).
Measure = tuple[Callable[[], tuple[int, float]], int | None]


def interleaved(repeat: int, measures: dict[str, Measure]) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """GB/s and CPU s/GB of each measure, --repeat times, round-robin: one round of all of them, then the next.

    On a shared machine the load drifts within a minute; measuring every stream once per round, instead of one
    stream's repeats and then the next stream's, gives each ratio figures taken under the same conditions.  The
    CPU a serving process spends per GB hardly depends on the neighbours' load, where throughput does.
    """
    for measure, _ in measures.values():
        measure()  # warm the page cache and the servers
    rates: dict[str, list[float]] = {name: [] for name in measures}
    costs: dict[str, list[float]] = {name: [] for name in measures}
    for _ in range(repeat):
        for name, (measure, pid) in measures.items():
            before = cpu_seconds(pid) if pid is not None else 0.0
            size, seconds = measure()
            rates[name].append(size / seconds / 1e9)
            if pid is not None:
                costs[name].append((cpu_seconds(pid) - before) / (size / 1e9))
    return rates, costs


def cat_rate(path: Path) -> tuple[int, float]:
    began = time.perf_counter()
    subprocess.run(f"cat '{path}' > /dev/null", shell=True, check=True)
    return path.stat().st_size, time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--size-gb", type=float, default=1.05)
    parser.add_argument("--bare-app", nargs=2, metavar=("FILE", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_app:
        bare_app(Path(args.bare_app[0]), int(args.bare_app[1]))
        return
    bam, data_dir = prepare(int(args.size_gb * 1e9))
    node_port, bare_port = free_port(), free_port()
    node_url = f"http://127.0.0.1:{node_port}"
    serve = [sys.executable, "-m", "genoshare", "serve", "--data-dir", str(data_dir), "--port"]
    server = start([*serve, str(node_port)], f"{node_url}/service-info", {"GENOSHARE_PUBLIC_URL": node_url})
    bare = start([sys.executable, __file__, "--bare-app", str(bam), str(bare_port)], f"http://127.0.0.1:{bare_port}/x")
    try:
        pids = {"node": server.pid, "bare": bare.pid}
        run(args, bam, data_dir, node_url, f"http://127.0.0.1:{bare_port}/file", pids)
    finally:
        for process in (server, bare):
            process.terminate()
            process.wait(timeout=20)


def decrypt_rate(data_dir: Path, start: int, end: int) -> tuple[int, float]:
    """(bytes, seconds) of ``EncryptedFile.iter_plaintext`` over ``[start, end)`` of the stored BAM, in this process."""
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
            return end - start, time.perf_counter() - began
    finally:
        node.close()


def run(
    args: argparse.Namespace,
    bam: Path,
    data_dir: Path,
    node_url: str,
    bare_url: str,
    pids: dict[str, int],
) -> None:
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
        plaintext_latencies = []
        for _ in range(max(args.tickets // 5, 50)):
            start = rng.randrange(0, CONTIG_LENGTH - 10_000)
            params = {"referenceName": "chr1", "start": start, "end": start + 10_000}
            began = time.perf_counter()
            client.get(f"{reads}_plain", params=params).raise_for_status()
            plaintext_latencies.append(time.perf_counter() - began)
        slice_params = {"referenceName": "chr1", "start": 0, "end": CONTIG_LENGTH * 3 // 4}
        plain = client.get(reads, params=slice_params).json()
        sealed = client.get(reads, params={**slice_params, "encryptionScheme": "C4GH"}, headers=c4gh).json()
        at_rest = client.get(f"{reads}_plain", params=slice_params).json()

    def quantile(values: list[float], q: float) -> float:
        return sorted(values)[min(len(values) - 1, int(q * len(values)))] * 1e3

    ranges = [
        (int(e["headers"]["Range"][6:].split("-")[0]), int(e["headers"]["Range"].split("-")[1]) + 1)
        for e in plain["htsget"]["urls"]
        if "headers" in e
    ]
    size = sum(end - start for start, end in ranges)
    body = max(ranges, key=lambda span: span[1] - span[0])
    rates, costs = interleaved(
        args.repeat,
        {
            "cat": (lambda: cat_rate(bam), None),
            "ceiling": (lambda: curl(bare_url, {}), pids["bare"]),
            "plaintext": (lambda: stream_ticket(at_rest), pids["node"]),
            "reencrypted": (lambda: stream_ticket(sealed), pids["node"]),
            "decrypting": (lambda: stream_ticket(plain), pids["node"]),
            "cipher": (lambda: decrypt_rate(data_dir, *body), os.getpid()),
        },
    )
    rates["serial"] = [1 / (1 / c + 1 / h) for c, h in zip(rates["cipher"], rates["ceiling"], strict=True)]

    def row(label: str, name: str, note: str = "") -> None:
        """The median rate, the medians of its ratios to the baselines measured in the same rounds, and CPU/GB."""
        rate = statistics.median(rates[name])
        ceiling = statistics.median(r / c for r, c in zip(rates[name], rates["ceiling"], strict=True))
        cat = statistics.median(r / c for r, c in zip(rates[name], rates["cat"], strict=True))
        cpu = f"{statistics.median(costs[name]):5.2f}" if costs.get(name) else "    -"
        print(f"{label:34s} {rate:6.2f} GB/s   {ceiling:5.2f}x ceiling   {cat:5.2f}x cat   {cpu} CPU s/GB   {note}")

    print(f"\nBAM {bam.stat().st_size / 1e9:.2f} GB; slice {size / 1e9:.2f} GB; {args.tickets} tickets")
    for label, values, note in (
        ("ticket latency (encrypted at rest)", latencies, "target p50 < 5 ms"),
        ("ticket latency (plaintext at rest)", plaintext_latencies, ""),
        ("ticket latency (C4GH to client)", c4gh_latencies, ""),
    ):
        print(f"{label:34s} p50 {quantile(values, 0.5):6.2f} ms   p99 {quantile(values, 0.99):6.2f} ms   {note}")
    row("cat file > /dev/null", "cat", "(raw read baseline)")
    row("bare ASGI, 1 MiB chunks", "ceiling", "(HTTP ceiling, curl client)")
    row("node, plaintext at rest", "plaintext", "target >= 0.8x ceiling")
    row("node, re-encrypted to client", "reencrypted", "target >= 0.8x ceiling")
    row("node, decrypted from C4GH", "decrypting", "(cipher releases the GIL)")
    row("  in-process decryption", "cipher", "(cipher ceiling, one thread)")
    row("  decrypt, then send, serial", "serial", "(bound when the two take turns)")
    print(f"{args.repeat} interleaved rounds; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
