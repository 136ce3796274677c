"""The Beacon network's cost: an allele query through ``/network/api`` beside the same query on one node.

Usage: python benchmarks/network.py [--peers 10] [--queries 300] [--deadline 1.0]

Builds (in a temporary directory) one synthetic cohort per peer, a public dataset each, and serves every node
with ``genoshare serve`` on loopback: ``--peers`` peers, and three hubs without data of their own that ask
them on ``/network/api`` (one with a single peer, one with all of them, one with all but one plus a peer that
accepts connections and never answers). Then times, with one keep-alive client, ``--queries`` allele queries
(sequence query, yes/no as a Beacon network asks, anonymous) of an allele of the first cohort:

- one node:       ``/api/g_variants`` of one peer
- network of 1:   the hub with one peer (the aggregation's own cost, without CPU shared by many nodes)
- network of N:   the hub with all the peers
- one peer dead:  the same after killing a peer's process (connection refused)
- one peer silent: the hub whose extra peer never answers: each answer waits for the deadline, no longer

Every node runs on this one machine, so with N peers the N answers share its CPUs: the network-of-N figure
includes that contention, which a real network (one machine per node) does not have.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pysam

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_ingestor, init_node
from genoshare.settings import load_settings
from genoshare_lab.synth import generate_cohort


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build(root: Path, index: int, people: int, variants: int) -> tuple[Path, dict[str, str]]:
    """A node with one public dataset of its own synthetic cohort, and an allele query it answers."""
    cohort = generate_cohort(root / f"cohort{index}", people, 2_000_000, seed=index, n_variants=variants)
    node = init_node(load_settings(root / f"node{index}", environment="test", node_name=f"node{index}"))
    name = f"cohort{index}"
    DatasetService(node.database).create(
        NewDataset(id=name, title=name, custodian="bench", access_level="public", duo_codes=["GRU"])
    )
    build_ingestor(node).ingest(name, [cohort.vcf_path])
    node.close()
    with pysam.VariantFile(str(cohort.vcf_path)) as vcf:
        record = next(iter(vcf))
    query = {
        "referenceName": record.chrom,
        "start": str(record.start),
        "referenceBases": record.ref or "N",
        "alternateBases": (record.alts or ("N",))[0],
    }
    return root / f"node{index}", query


class Served:
    """``genoshare serve`` in a child process on a free loopback port."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "genoshare", "serve", "--data-dir", str(data_dir), "--port", str(self.port)]
        environment = {**os.environ, **(env or {}), "GENOSHARE_PUBLIC_URL": self.url}
        self.process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/service-info", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise RuntimeError(f"{data_dir} did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def timed(http: httpx.Client, url: str, query: dict[str, str], n: int) -> list[float]:
    for _ in range(min(20, n)):
        http.get(url, params=query).raise_for_status()
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        http.get(url, params=query).raise_for_status()
        samples.append(time.perf_counter() - started)
    return samples


def figures(samples: list[float]) -> tuple[float, float, float]:
    """p50, p99 and max in ms."""
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1000, p99 * 1000, ordered[-1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--peers", type=int, default=10)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--deadline", type=float, default=1.0)
    parser.add_argument("--people", type=int, default=100)
    parser.add_argument("--variants", type=int, default=2000)
    options = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")

    with tempfile.TemporaryDirectory(prefix="genoshare-network-bench-") as tmp:
        root = Path(tmp)
        started = time.perf_counter()
        built = [build(root, index, options.people, options.variants) for index in range(options.peers)]
        hub_dirs = [root / f"hub{index}" for index in range(3)]
        for hub_dir in hub_dirs:
            init_node(load_settings(hub_dir, environment="test", node_name=hub_dir.name)).close()
        print(f"built {len(built)} peers and 3 hubs in {time.perf_counter() - started:.1f} s")
        # Every cohort is simulated on the same contig: the first one's allele is asked everywhere.
        query = {**built[0][1], "requestedGranularity": "boolean"}
        with ThreadPoolExecutor(2) as pool:
            peers = list(pool.map(lambda b: Served(b[0]), built[: options.peers]))
        silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        def hub(index: int, members: list[str]) -> Served:
            network = {"peers": [{"url": url} for url in members], "deadline_seconds": options.deadline}
            return Served(hub_dirs[index], {"GENOSHARE_NETWORK": json.dumps(network)})

        urls = [peer.url for peer in peers]
        hubs = [hub(0, urls[:1]), hub(1, urls), hub(2, [*urls[:-1], silent_url])]
        rows: list[tuple[str, tuple[float, float, float]]] = []
        try:
            with httpx.Client(timeout=30) as http:
                path = "g_variants"
                single = figures(timed(http, f"{peers[0].url}/api/{path}", query, options.queries))
                rows.append(("one node", single))
                rows.append(
                    ("network of 1", figures(timed(http, f"{hubs[0].url}/network/api/{path}", query, options.queries)))
                )
                rows.append(
                    (
                        f"network of {options.peers}",
                        figures(timed(http, f"{hubs[1].url}/network/api/{path}", query, options.queries)),
                    )
                )
                peers[-1].stop()
                answer = http.get(f"{hubs[1].url}/network/api/{path}", params=query).json()
                dead = [n for n in answer["info"]["network"]["nodes"] if n["status"] != "answered"]
                assert [n["status"] for n in dead] == ["unreachable"], dead
                rows.append(
                    ("one peer dead", figures(timed(http, f"{hubs[1].url}/network/api/{path}", query, options.queries)))
                )
                quiet = max(20, options.queries // 10)  # each waits for the deadline
                rows.append(
                    ("one peer silent", figures(timed(http, f"{hubs[2].url}/network/api/{path}", query, quiet)))
                )
        finally:
            for server in [*hubs, *peers[:-1]]:
                server.stop()
            silent.close()

    print(f"\n{'':<18}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'p50 / one node':>17}")
    for name, (p50, p99, most) in rows:
        print(f"{name:<18}{p50:>10.2f}{p99:>10.2f}{most:>10.2f}{p50 / single[0]:>16.2f}x")
    print(f"\ndeadline {options.deadline:g} s; a silent peer's answers took at most {rows[-1][1][2] / 1000:.3f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
