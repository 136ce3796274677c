"""A node under load: mixed Beacon, DRS and htsget-ticket requests at a constant arrival rate (issue 19).

Usage: python benchmarks/load.py [--rate 300] [--connections 200] [--seconds 60] [--workers 2]
                                 [--individuals 200] [--variants 100000] [--postgres-url ADMIN_URL | --no-postgres]
                                 [--no-sqlite] [--kinds KIND ...]

``--kinds beacon`` (or ``"beacon grant"``, ``drs``, ``"htsget ticket"``) sends only those kinds of the mix: at
a rate the machine serves without a queue, the server's CPU time over the requests is what one of that kind
costs.

The node is the one benchmarks/beacon_server.py builds (a controlled dataset holding a synthetic cohort VCF,
its Beacon index and phenotypes; cached under benchmarks/work), on SQLite and on PostgreSQL, each served in
turn by `genoshare serve --workers N`. The generator runs on the same machine (two cores here, shared).

The generator is open-loop: request i is due at ``start + i / rate`` whatever happened to earlier ones, and
its latency is counted from that due time, not from when a connection came free. A closed loop (each client
waiting for its answer before the next question: locust's users, ``ab``, ``wrk`` without ``-R``) sends less
when the server slows down and so never measures the queue it would have met: coordinated omission. It is
plain asyncio: one process, one thread, 200 keep-alive connections opened before the run (the server keeps
idle ones for 120 s here, so all stay open), each taking the next due request when it is free; locust would
add gevent and a closed-loop user model to a machine whose two cores the server needs.

The mix, per due request, in turn:

- 5 of 10: Beacon allele query (``/api/g_variants``, boolean) by one of 100 registered researchers (a
  ResearcherStatus visa, no grant): the privacy guard's path, a budget spend and an answer written per question;
- 1 of 10: the same by a researcher with a grant for the dataset (record level, no privacy state);
- 2 of 10: DRS, ``/objects/{id}`` and ``/objects/{id}/access/https`` (a signed ticket), alternately;
- 2 of 10: htsget ticket for a random 100 kb region of the VCF (``/htsget/variants/{id}``).

Reported per database: achieved rate, errors (anything but 200, and transport errors), client-side p50/p99
(from the due time) per kind and over all, the server's own time per route from its access log (time spent
in the application, without the queue before it), the open connections the server held at the end, the
generator's CPU, and the load average. CPU is counted from after each connection's first request to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pyarrow.ipc as ipc
from beacon_server import ISSUER, admin_postgres_url, build, cohort, free_port, postgres_database
from sqlalchemy import select
from sqlalchemy.engine import make_url

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import RESEARCHER_STATUS
from genoshare.datasets.service import DatasetService
from genoshare.settings import BONA_FIDE_RESEARCHER, load_settings
from genoshare.store.db import Database
from genoshare.store.models import DataObject

USERS = 100
#: Of them, researchers with an approved access request (DRS, htsget, record-level Beacon).
GRANTEES = 20
KINDS = ("beacon", "beacon grant", "drs", "htsget ticket")
MIX = ["beacon"] * 5 + ["beacon grant"] + ["drs"] * 2 + ["htsget ticket"] * 2


@dataclass
class Outcome:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    examples: list[str] = field(default_factory=list)
    finished: float = 0.0
    #: Connections still open when the run ended (each carried requests to the end).
    held: int = 0


@dataclass(frozen=True)
class Request:
    kind: str
    path: str
    params: dict[str, str | int]
    headers: dict[str, str]


def researchers(issuer: VisaIssuer) -> list[dict[str, str]]:
    """Registered researchers' headers: a ResearcherStatus visa, no grant."""
    stamp = time.time_ns()
    headers = []
    for n in range(USERS):
        user = f"load-{stamp}-{n}"  # new people each run: budgets and answer caches start empty
        status = issuer.visa(user, RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by="so")
        headers.append({"Authorization": f"Bearer {issuer.passport(user, [status], lifetime=86400)}"})
    return headers


def grantees(client: httpx.Client, registered: list[dict[str, str]]) -> list[dict[str, str]]:
    """Passports the node signs for researchers whose access requests its committee approved (automatically)."""
    signed = []
    for headers in registered[:GRANTEES]:
        body = {"datasets": ["bench"], "purpose": {"primary": "GRU"}, "project_title": "load", "institution": "lab"}
        made = client.post("/governance/requests", json=body, headers=headers)
        if made.status_code not in (200, 201) or made.json()["status"] != "approved":
            sys.exit(f"the access request was not approved: {made.status_code} {made.text}")
        passport = client.get("/governance/passport", headers=headers).json()["passport"]
        signed.append({"Authorization": f"Bearer {passport}"})
    return signed


def plan(
    total: int,
    alleles: list[tuple[int, str, str]],
    last: int,
    vcf: DataObject,
    registered: list[dict[str, str]],
    granted: list[dict[str, str]],
    kinds: tuple[str, ...] = KINDS,
) -> list[Request]:
    rng = random.Random(19)
    mix = [kind for kind in MIX if kind in kinds]
    requests = []
    for i in range(total):
        kind = mix[i % len(mix)]
        if kind.startswith("beacon"):
            start, ref, alt = alleles[i % len(alleles)]
            params: dict[str, str | int] = {
                "referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt,
                "requestedGranularity": "boolean",
            }  # fmt: skip
            who = registered if kind == "beacon" else granted
            requests.append(Request(kind, "/api/g_variants", params, rng.choice(who)))
        elif kind == "drs":
            path = f"/ga4gh/drs/v1/objects/{vcf.id}" + ("/access/https" if i % 20 < 10 else "")
            requests.append(Request(kind, path, {}, rng.choice(granted)))
        else:
            start = rng.randrange(0, max(1, last - 100_000))
            params = {"referenceName": "20", "start": start, "end": start + 100_000}
            requests.append(Request(kind, f"/htsget/variants/{vcf.htsget_id}", params, rng.choice(granted)))
    return requests


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> tuple[int, bytes]:
    """One HTTP/1.1 request on a kept-alive connection: the status and body (the node sends Content-Length)."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next((int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), 0)
    return status, await reader.readexactly(length)


def encoded(request: Request) -> bytes:
    target = request.path + (f"?{urlencode(request.params)}" if request.params else "")
    headers = "".join(f"{name}: {value}\r\n" for name, value in request.headers.items())
    return f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}\r\n".encode()


async def generate(
    port: int, requests: list[Request], rate: float, connections: int, ready: Callable[[], None]
) -> Outcome:
    """Send ``requests`` open-loop at ``rate`` a second over ``connections`` kept-alive connections.

    ``ready`` is called once the connections are open and have each carried one request, before the first
    due request: what is measured from then on is the run's own requests.

    A scheduler queues each request at its due time; whichever connection is free takes it. A hand-written
    HTTP/1.1 exchange on asyncio streams, not httpx: httpx's pool spent ~9 ms of CPU a request here with 200
    connections and a queue (it matches waiting requests to connections by scanning both), which the
    generator, sharing two cores with the server, cannot afford.
    """
    outcome = Outcome()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[Request, bytes, float] | None] = asyncio.Queue()
    opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(connections)]
    hello = b"GET /service-info HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    await asyncio.gather(*(exchange(reader, writer, hello) for reader, writer in opened))
    ready()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (item := await queue.get()) is not None:
            request, raw, due = item
            try:
                status, body = await exchange(reader, writer, raw)
                problem = "" if status == 200 else f"{status} {body[:200].decode(errors='replace')}"
            except (OSError, asyncio.IncompleteReadError, ValueError) as error:
                problem = f"{type(error).__name__}: {error}"
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            outcome.latencies[request.kind].append(loop.time() - due)
            if problem:
                outcome.errors[request.kind] += 1
                if len(outcome.examples) < 5:
                    outcome.examples.append(f"{request.kind} {request.path}: {problem}")
        outcome.held += not writer.is_closing()
        writer.close()

    workers = [asyncio.create_task(connection(reader, writer)) for reader, writer in opened]
    raws = [encoded(request) for request in requests]
    began = loop.time() + 0.05
    for i, request in enumerate(requests):
        due = began + i / rate
        wait = due - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        queue.put_nowait((request, raws[i], due))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    outcome.finished = loop.time() - began
    return outcome


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``genoshare serve`` and its worker processes)."""
    found = [pid]
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in children:
            found.extend(tree(int(child)))
    return found


class BackendCpu:
    """CPU time of PostgreSQL's server processes for one database, sampled through a run.

    A backend lives as long as its connection: the pool's overflow connections, opened in a burst and
    closed when returned, take their backend's CPU time with them when they exit, and a reading only at the
    start and end missed all of it. So the postmaster's children are read every ``interval`` seconds: a
    backend's last reading counts, and only the work of a backend that came and went between two readings is
    missed (``stop`` says how many were seen, and how many of them exited during the run).
    """

    def __init__(self, name: str, interval: float = 0.05) -> None:
        self.name = name
        self.interval = interval
        self.postmaster = self._postmaster()
        self.ours: dict[int, bool] = {}
        self.before = self._readings()
        self.last = dict(self.before)
        self.gone: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="backend-cpu", daemon=True)
        self._thread.start()

    def _postmaster(self) -> int:
        """The postmaster: the parent of a process whose title names the database (one is open: the pool's)."""
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                if f" {self.name} " in (proc / "cmdline").read_bytes().decode(errors="replace"):
                    return int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
        sys.exit(f"no PostgreSQL backend serves {self.name}: cannot measure the database's CPU")

    def _readings(self) -> dict[int, float]:
        children: list[int] = []
        for task in Path(f"/proc/{self.postmaster}/task").glob("*"):
            try:
                children.extend(int(pid) for pid in (task / "children").read_text().split())
            except OSError:
                continue
        for pid in children:
            if pid not in self.ours:
                try:
                    self.ours[pid] = f" {self.name} " in Path(f"/proc/{pid}/cmdline").read_bytes().decode(
                        errors="replace"
                    )
                except OSError:
                    self.ours[pid] = False
        return cpu_seconds([pid for pid in children if self.ours[pid]])

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            now = self._readings()
            self.gone |= self.last.keys() - now.keys()
            self.last.update(now)

    def stop(self) -> tuple[float, int, int]:
        """CPU seconds the database's backends used since the start, backends seen, and of them gone."""
        self._stop.set()
        self._thread.join()
        self.last.update(self._readings())
        used = sum(seconds - self.before.get(pid, 0.0) for pid, seconds in self.last.items())
        return used, len(self.last), len(self.gone)


def cpu_seconds(pids: list[int]) -> dict[int, float]:
    """User + system CPU seconds of each process (gone ones left out)."""
    ticks = os.sysconf("SC_CLK_TCK")
    used = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / ticks
    return used


def ms(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] * 1000 if ordered else float("nan")


def run_one(
    name: str, node_dir: Path, make: Callable[[httpx.Client], list[Request]], args: argparse.Namespace, log_file: Path
) -> dict[str, object]:
    port = free_port()
    env = {**os.environ, "GENOSHARE_KEEP_ALIVE_SECONDS": "120"}
    env.pop("GENOSHARE_DATABASE_URL", None)  # the node's own genoshare.toml names its database
    with log_file.open("w") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "genoshare", "serve", "--data-dir", str(node_dir), "--port", str(port),
             "--workers", str(args.workers)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(1200):
            try:
                if httpx.get(f"{url}/service-info", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        # One of each kind first: indexes loaded, caches warm in the worker that answers.
        with httpx.Client(base_url=url, timeout=60) as client:
            requests = make(client)
            for request in requests[: len(MIX) * 4]:
                client.get(request.path, params=request.params, headers=request.headers)
        database = "" if name == "sqlite" else make_url(load_settings(node_dir).database_url).database or ""
        started: dict[str, Any] = {}

        def ready() -> None:
            started["cpu"] = resource.getrusage(resource.RUSAGE_SELF)
            started["server"] = cpu_seconds(tree(server.pid))
            started["backends"] = BackendCpu(database) if database else None
            started["load"] = os.getloadavg()[0]

        outcome = asyncio.run(generate(port, requests, args.rate, args.connections, ready))
        cpu_after = resource.getrusage(resource.RUSAGE_SELF)
        server_cpu = sum(cpu_seconds(tree(server.pid)).values()) - sum(started["server"].values())
        database_cpu, backends_seen, backends_gone = started["backends"].stop() if database else (0.0, 0, 0)
        cpu_before, load_before = started["cpu"], started["load"]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    generator_cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    # The server's own time per route: its JSON access log lines.
    server_ms: dict[str, list[float]] = defaultdict(list)
    for line in log_file.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if "duration_ms" in entry and entry.get("route") not in (None, "/service-info"):
                server_ms[entry["route"]].append(entry["duration_ms"] / 1000)
    everything = [s for samples in outcome.latencies.values() for s in samples]
    return {
        "name": name,
        "outcome": outcome,
        "all": everything,
        "server": server_ms,
        "held": outcome.held,
        "generator_cpu": generator_cpu,
        "server_cpu": server_cpu,
        "database_cpu": database_cpu,
        "backends": (backends_seen, backends_gone),
        "load": (load_before, os.getloadavg()[0]),
    }


def report(result: dict[str, object], args: argparse.Namespace) -> None:
    outcome: Outcome = result["outcome"]  # type: ignore[assignment]
    everything: list[float] = result["all"]  # type: ignore[assignment]
    errors = sum(outcome.errors.values())
    load: tuple[float, float] = result["load"]  # type: ignore[assignment]
    load_before, load_after = load
    print(f"\n{result['name']}: offered {args.rate:.0f}/s for {args.seconds} s over {args.connections} connections")
    print(
        f"  achieved {len(everything) / outcome.finished:.1f}/s ({len(everything)} in {outcome.finished:.1f} s), "
        f"errors {errors}, connections held at the end {result['held']}, load average {load_before:.1f} -> "
        f"{load_after:.1f}"
    )
    served = len(everything)
    cpu: dict[str, float] = {
        "server": result["server_cpu"],  # type: ignore[dict-item]
        "PostgreSQL": result["database_cpu"],  # type: ignore[dict-item]
        "generator": result["generator_cpu"],  # type: ignore[dict-item]
    }
    print(
        "  CPU during the run: "
        + ", ".join(
            f"{who} {used:.1f} s ({used / served * 1000:.2f} ms a request)" for who, used in cpu.items() if used
        )
        + f"; the run had {outcome.finished * (os.cpu_count() or 1):.0f} CPU-seconds ({os.cpu_count()} CPUs), shared"
    )
    backends: tuple[int, int] = result["backends"]  # type: ignore[assignment]
    seen, gone = backends
    if seen:
        print(f"  PostgreSQL backends of the database seen during the run {seen}, of them exited during it {gone}")
    print(f"  {'kind':<16}{'n':>7}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}{'errors':>8}")
    for kind in (*KINDS, "all"):
        samples = everything if kind == "all" else outcome.latencies.get(kind, [])
        wrong = errors if kind == "all" else outcome.errors.get(kind, 0)
        print(f"  {kind:<16}{len(samples):>7}{ms(samples, 0.5):>10.1f}{ms(samples, 0.99):>10.1f}"
              f"{ms(samples, 1.0):>10.1f}{wrong:>8}")  # fmt: skip
    print("  server time per route (access log: in the application, after any queue)")
    server: dict[str, list[float]] = result["server"]  # type: ignore[assignment]
    for route, samples in sorted(server.items()):
        print(f"    {route:<44}{len(samples):>7}  p50 {ms(samples, 0.5):.1f} ms  p99 {ms(samples, 0.99):.1f} ms"
              f"  mean {statistics.fmean(samples) * 1000:.1f} ms")  # fmt: skip
    for example in outcome.examples:
        print(f"  error: {example}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=300)
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--individuals", type=int, default=200)
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--postgres-url", help="admin URL of PostgreSQL (default: $GENOSHARE_TEST_POSTGRES_URL)")
    parser.add_argument("--no-postgres", action="store_true", help="load the SQLite node only")
    parser.add_argument("--no-sqlite", action="store_true", help="load the PostgreSQL node only")
    parser.add_argument(
        "--kinds", nargs="+", choices=KINDS, default=list(KINDS), metavar="KIND",
        help="send only these kinds of the mix (each kind's CPU a request, at a rate the machine can serve)",
    )  # fmt: skip
    args = parser.parse_args()

    root, _, issuer = cohort(args.individuals, args.variants)
    nodes = {"sqlite": build(root, "node")}
    if not args.no_postgres:
        database = postgres_database(
            admin_postgres_url(args.postgres_url), f"gs_bench_beacon_{args.individuals}x{args.variants}"
        )
        nodes["postgresql"] = build(root, "node-pg", database)
    node_dir = nodes["sqlite"][0]
    index = next(node_dir.glob("beacon/bench/*/variants.arrow"))
    table = ipc.open_file(index).read_all().select(["start", "ref", "alt"])
    rng = random.Random(42)
    picks = rng.sample(range(table.num_rows), min(table.num_rows, 20_000))
    alleles = [(table["start"][i].as_py(), table["ref"][i].as_py(), table["alt"][i].as_py()) for i in picks]
    last = max(a[0] for a in alleles)
    database = Database(nodes["sqlite"][1].database_url)
    with database.session() as session:
        vcf = session.scalars(select(DataObject).where(DataObject.dataset_id == "bench")).one()
    database.dispose()

    results = []
    for name, (directory, settings) in nodes.items():
        if name == "sqlite" and args.no_sqlite:
            continue
        database = Database(settings.database_url)
        DatasetService(database).set_committee("bench", [f"dac@{ISSUER}"], auto_approve=True)
        database.dispose()
        registered = researchers(issuer)

        def make(client: httpx.Client, registered: list[dict[str, str]] = registered) -> list[Request]:
            granted = grantees(client, registered)
            return plan(int(args.rate * args.seconds), alleles, last, vcf, registered, granted, tuple(args.kinds))

        print(f"{name}: serving with {args.workers} workers ...", flush=True)
        results.append(run_one(name, directory, make, args, root / f"load-{name}.log"))
    for result in results:
        report(result, args)


if __name__ == "__main__":
    main()
