"""``/metrics`` of ``genoshare serve --workers 2`` adds up every worker, and shows ingests run meanwhile.

Issue 18 (must-have 3): each worker kept its own counters, so a scrape (answered by whichever worker the
connection reached) showed a part of the node's traffic, a different part each time; and ingests, run by
the ``genoshare ingest`` command, were in no metric at all. Through a real server with two workers: after
requests answered by both (the access log names each request's process), every scrape reports all of them;
an ingest's files, bytes and failure appear; a restart starts the counters from zero.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from genoshare.datasets.service import NewDataset
from genoshare.node import build_datasets, init_node
from genoshare.settings import load_settings

from processes import run_cli
from support import HTSGET_DATA

ROUTE = "/ga4gh/drs/v1/service-info"


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of one scrape, by name and labels."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def served(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> float:
    labels = (("method", "GET"), ("route", ROUTE), ("status", "200"))
    return samples.get(("genoshare_request_seconds_count", labels), 0)


def test_metrics_add_up_across_workers_and_ingests(tmp_path: Path, serve: Any) -> None:
    settings = load_settings(tmp_path / "node", database_url="")
    node = init_node(settings)
    build_datasets(node).create(NewDataset("pub", "Public data", "Test Institute", "public", ["NRES"]))
    node.close()
    env = {"GENOSHARE_DATABASE_URL": ""}
    server = serve(settings.data_dir, env, args=["--workers", "2"])

    sent = 0
    while sent < 200:
        # Many connections at once: the kernel hands them to whichever worker is waiting.
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(lambda _: httpx.get(f"{server.url}{ROUTE}", timeout=30).status_code, range(40)))
        assert statuses == [200] * 40
        sent += 40
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            lines = [json.loads(line) for line in server.log.splitlines() if line.startswith("{")]
            answered = [entry["pid"] for entry in lines if entry.get("route") == ROUTE]
            if len(answered) == sent:
                break
            time.sleep(0.1)
        if len(set(answered)) == 2:
            break
    assert len(set(answered)) == 2, "both workers answered some of the requests"
    # Whichever worker answers the scrape, it reports the requests of both.
    assert [served(scrape(server.url)) for _ in range(6)] == [sent] * 6

    vcf = tmp_path / "public.vcf.gz"
    vcf.write_bytes((HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz").read_bytes())
    broken = tmp_path / "broken.vcf"
    broken.write_text("##fileformat=VCFv4.3\nthis is not a VCF record\n")
    for path in (vcf, broken):
        run_cli("ingest", "pub", str(path), "--data-dir", str(settings.data_dir), env=env)
    samples = scrape(server.url)
    assert samples[("genoshare_ingest_files_total", (("outcome", "published"),))] == 1
    assert samples[("genoshare_ingest_files_total", (("outcome", "failed"),))] == 1
    assert sum(v for (name, _), v in samples.items() if name == "genoshare_ingest_failures_total") == 1
    assert samples[("genoshare_ingest_bytes_total", (("stage", "checksum"),))] >= vcf.stat().st_size
    assert samples.get(("genoshare_ingests_running", ()), 0) == 0
    assert samples.get(("genoshare_ingest_files_pending", ()), 0) == 0

    server.stop()
    restarted = serve(settings.data_dir, env)
    samples = scrape(restarted.url)
    assert served(samples) == 0, "a new run starts its counters from zero"
    assert not [name for name, _ in samples if name.startswith("genoshare_ingest_files")]
    assert samples[("genoshare_objects", (("status", "available"),))] == 1, "whole-node gauges come from the database"
