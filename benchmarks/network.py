"""The Beacon network's cost: an allele query through ``/network/api`` beside the same query on one node.

Usage: python benchmarks/network.py [--peers 10] [--queries 300] [--deadline 1.0]

Builds (in a temporary directory) one synthetic cohort per peer, a public dataset each, and serves every node
with ``genoshare serve`` on loopback: ``--peers`` peers, and three hubs without data of their own that ask
them on ``/network/api`` (one with a single peer, one with all of them, one with all but one plus a peer that
accepts connections and never answers). Then times, with one keep-alive client, ``--queries`` allele queries
(sequence query, yes/no as a Beacon network asks, anonymous) of an allele of the first cohort:

- one node:       ``/api/g_variants`` of one peer
- network of 1:   the hub with one peer (the aggregation's own cost, without CPU shared by many nodes); also
                  asked in turn with one node, query by query, so that both see the same load
- N asked at once: the benchmark itself asks the N peers concurrently, no hub (what any aggregator on this
                  machine waits for: the floor under the network-of-N figure)
- network of N:   the hub with all the peers
- one peer dead:  the same after killing a peer's process (connection refused)
- one peer silent: the hub whose extra peer never answers: each answer waits for the deadline, no longer

Every node runs on this one machine, so with N peers the N answers share its CPUs: the network-of-N figure
includes that contention, which a real network (one machine per node) does not have. So each row also says
the CPU time its query cost every process (hub and peers, read from /proc): a network-of-N answer cannot
come sooner than that CPU time divided by the CPUs, whatever the network layer does, and the output says
what ratio to one node that floor is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
        self.process.kill()
        raise RuntimeError(f"{data_dir} did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU time the processes used so far (Linux /proc; 0 where it cannot be read)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / os.sysconf("SC_CLK_TCK")


class Row:
    """One row of the table: latencies (ms) and the CPU ms per query of the hub and of the peers."""

    def __init__(self, name: str, samples: list[float], hub_cpu: float = 0.0, peer_cpu: float = 0.0) -> None:
        ordered = sorted(samples)
        self.name = name
        self.p50 = statistics.median(ordered) * 1000
        self.p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000
        self.max = ordered[-1] * 1000
        self.hub_cpu, self.peer_cpu = hub_cpu * 1000 / len(samples), peer_cpu * 1000 / len(samples)


def timed(
    http: httpx.Client, name: str, url: str, query: dict[str, str], n: int, hub: list[int], peers: list[int]
) -> Row:
    for _ in range(min(20, n)):
        http.get(url, params=query).raise_for_status()
    samples = []
    hub_before, peers_before = cpu_seconds(hub), cpu_seconds(peers)
    for _ in range(n):
        started = time.perf_counter()
        http.get(url, params=query).raise_for_status()
        samples.append(time.perf_counter() - started)
    return Row(name, samples, cpu_seconds(hub) - hub_before, cpu_seconds(peers) - peers_before)


def alternated(http: httpx.Client, urls: list[str], query: dict[str, str], n: int) -> list[list[float]]:
    """Latencies of ``urls`` asked in turn, query by query: each sees the same moments of a busy machine.

    Rows timed one after the other see whatever load the machine had during each; on a shared machine the
    ratio of two such rows says more about the load than about what is compared.
    """
    samples: list[list[float]] = [[] for _ in urls]
    for _ in range(n):
        for url, kept in zip(urls, samples, strict=True):
            started = time.perf_counter()
            http.get(url, params=query).raise_for_status()
            kept.append(time.perf_counter() - started)
    return samples


def fanned_out(name: str, urls: list[str], query: dict[str, str], n: int, peers: list[int]) -> Row:
    """The N peers asked at once by this process (no hub): the wait any aggregator here has at least."""

    async def run() -> list[float]:
        clients = [httpx.AsyncClient(timeout=30) for _ in urls]  # one pool per peer, as the hub has
        async with contextlib.AsyncExitStack() as stack:
            for client in clients:
                await stack.enter_async_context(client)

            async def once() -> None:
                answers = await asyncio.gather(
                    *(c.get(url, params=query) for c, url in zip(clients, urls, strict=True))
                )
                for answer in answers:
                    answer.raise_for_status()

            for _ in range(min(20, n)):
                await once()
            samples = []
            for _ in range(n):
                started = time.perf_counter()
                await once()
                samples.append(time.perf_counter() - started)
            return samples

    before = cpu_seconds(peers)
    samples = asyncio.run(run())
    return Row(name, samples, 0.0, cpu_seconds(peers) - before)


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
            starting = [pool.submit(Served, data_dir) for data_dir, _ in built]
        if any(future.exception() for future in starting):  # stop the others, then say why
            for future in starting:
                if future.exception() is None:
                    future.result().stop()
            raise next(error for future in starting if (error := future.exception()) is not None)
        peers = [future.result() for future in starting]
        silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"

        def hub(index: int, members: list[str]) -> Served:
            network = {"peers": [{"url": url} for url in members], "deadline_seconds": options.deadline}
            return Served(hub_dirs[index], {"GENOSHARE_NETWORK": json.dumps(network)})

        urls = [peer.url for peer in peers]
        hubs = [hub(0, urls[:1]), hub(1, urls), hub(2, [*urls[:-1], silent_url])]
        rows: list[Row] = []
        pids = [peer.process.pid for peer in peers]
        try:
            with httpx.Client(timeout=30) as http:
                path, n = "g_variants", options.queries
                rows.append(timed(http, "one node", f"{urls[0]}/api/{path}", query, n, [], pids[:1]))
                one = timed(
                    http, "network of 1", f"{hubs[0].url}/network/api/{path}", query, n, [hubs[0].process.pid], pids[:1]
                )
                rows.append(one)
                pair = alternated(http, [f"{urls[0]}/api/{path}", f"{hubs[0].url}/network/api/{path}"], query, n)
                rows.append(
                    fanned_out(f"{options.peers} asked at once", [f"{u}/api/{path}" for u in urls], query, n, pids)
                )
                hub_pid = [hubs[1].process.pid]
                rows.append(
                    timed(
                        http,
                        f"network of {options.peers}",
                        f"{hubs[1].url}/network/api/{path}",
                        query,
                        n,
                        hub_pid,
                        pids,
                    )
                )
                peers[-1].stop()
                answer = http.get(f"{hubs[1].url}/network/api/{path}", params=query).json()
                dead = [node for node in answer["info"]["network"]["nodes"] if node["status"] != "answered"]
                assert [node["status"] for node in dead] == ["unreachable"], dead
                rows.append(timed(http, "one peer dead", f"{hubs[1].url}/network/api/{path}", query, n, hub_pid, pids))
                quiet = max(20, n // 10)  # each waits for the deadline
                silent_hub = [hubs[2].process.pid]
                rows.append(
                    timed(http, "one peer silent", f"{hubs[2].url}/network/api/{path}", query, quiet, silent_hub, pids)
                )
        finally:
            for server in [*hubs, *peers[:-1]]:
                server.stop()
            silent.close()

    single = rows[0]
    print(
        f"\n{'':<18}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'p50/one':>9}{'hub CPU':>9}{'peers CPU':>11}"
        "  (CPU: ms a query)"
    )
    for row in rows:
        ratio = row.p50 / single.p50
        print(
            f"{row.name:<18}{row.p50:>9.2f}{row.p99:>9.2f}{row.max:>9.2f}{ratio:>8.2f}x{row.hub_cpu:>9.2f}{row.peer_cpu:>11.2f}"
        )
    cpus = os.cpu_count() or 1
    network = rows[3]
    spent = network.hub_cpu + network.peer_cpu
    print(
        f"\nthe network layer's own cost (network of 1 / one node): {one.p50 / single.p50:.2f}x p50, "
        f"+{one.p50 - single.p50:.2f} ms; hub CPU {one.hub_cpu:.2f} ms a query"
    )
    print(
        f"CPU arithmetic, network of {options.peers}: hub {network.hub_cpu:.2f} ms + peers {network.peer_cpu:.2f} ms"
        f" = {spent:.2f} ms of CPU a query, against one node's {single.peer_cpu:.2f} ms; on {cpus} CPUs"
        f" no answer can come sooner than {spent / cpus:.2f} ms = {spent / cpus / single.p50:.1f}x one node's p50,"
        f" with the CPUs free of other work (a network with a machine per node is bounded by its slowest node instead)"
    )
    node_alone, through_hub = (statistics.median(samples) * 1000 for samples in pair)
    print(
        f"one node and the network of 1 asked in turn, query by query ({n} each): p50 {node_alone:.2f} ms and "
        f"{through_hub:.2f} ms = {through_hub / node_alone:.2f}x, +{through_hub - node_alone:.2f} ms"
    )
    print(f"deadline {options.deadline:g} s; a silent peer's answers took at most {rows[-1].max / 1000:.3f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {cpus} CPUs")


if __name__ == "__main__":
    main()
