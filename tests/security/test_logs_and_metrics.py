"""The server's logs and probes, through `genoshare serve`: what an operator reads must hold no secret.

A passport, a download ticket, a consent link's secret and genotypes all pass through the server while it
logs; none may reach the log (an attacker who reads logs, or a log shipper, would hold them). Every log line
is one JSON object, the request's id is echoed and logged, and /metrics and /ready answer.
"""

from __future__ import annotations

import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from genoshare.demo.setup import COHORT_DATASET, PUBLIC_DATASET

from portal_support import PortalNode, portal_node
from processes import Server

pytestmark = pytest.mark.slow

DRS = "/ga4gh/drs/v1"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    with portal_node(tmp_path_factory.mktemp("logs")) as served:
        yield served


def test_no_passport_ticket_consent_secret_or_genotype_reaches_the_log(node: PortalNode) -> None:
    passport = node.demo.passport
    bearer = {"Authorization": f"Bearer {passport}", "X-Request-ID": "trace-4711"}
    with httpx.Client(base_url=node.url, timeout=60) as client:
        bundle = client.get(f"{DRS}/objects/{PUBLIC_DATASET}", headers=bearer)
        assert bundle.status_code == 200, bundle.text
        assert bundle.headers["x-request-id"] == "trace-4711"
        vcf = next(item for item in bundle.json()["contents"] if item["name"] == "spec-v4.3.vcf.gz")
        object_id = vcf["id"]
        access = client.get(f"{DRS}/objects/{object_id}/access/https", headers=bearer)
        assert access.status_code == 200, access.text
        url = access.json()["url"]
        headers = dict(header.split(": ", 1) for header in access.json().get("headers", []))
        ticket = headers.get("Authorization", url).rsplit(" ", 1)[-1].rsplit("/", 1)[-1]
        served = client.get(url, headers=headers)
        assert served.status_code == 200
        records = [line for line in gzip.decompress(served.content).decode().splitlines() if not line.startswith("#")]
        assert records, "the VCF has genotypes"
        beacon = client.post(
            "/api/g_variants",
            headers=bearer,
            json={"query": {"requestParameters": {"assemblyId": "GRCh38", "referenceName": "1", "start": [1]}}},
        )
        assert beacon.status_code in (200, 400)
        consent_link = node.demo.consent_link
        assert consent_link is not None
        opened = client.get(urlparse(consent_link).path)  # the demo printed it for its default port
        assert opened.status_code == 303
        refused = client.get(f"{DRS}/objects/{COHORT_DATASET}.cohort.vcf.gz")  # no passport: a denial to count
        assert refused.status_code in (401, 403)
    log = node.server.log
    secrets = {
        "passport": passport,
        "passport signature": passport.rsplit(".", 1)[-1],
        "passport payload": passport.split(".")[1],
        "ticket": ticket,
        "consent secret": consent_link.rsplit("/", 1)[-1],
    }
    leaked = [name for name, secret in secrets.items() if secret in log]
    assert not leaked, f"in the server's log: {leaked}"
    genotypes = [record for record in records if record.split("\t", 9)[-1] in log]
    assert not genotypes, "a VCF record's genotypes reached the log"
    entries = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert entries and all(line.startswith("{") for line in log.splitlines() if line.strip().startswith('{"')), log
    traced = [entry for entry in entries if entry.get("request_id") == "trace-4711"]
    assert traced and traced[0]["route"] == f"{DRS}/objects/{{object_id}}" and traced[0]["status"] == 200
    assert any(entry.get("route", "").startswith("/data") for entry in entries), "the download was logged"


def test_metrics_count_latency_per_route_denials_and_the_audit_chain(node: PortalNode) -> None:
    with httpx.Client(base_url=node.url, timeout=30) as client:
        client.get(f"{DRS}/objects/{COHORT_DATASET}.cohort.vcf.gz")  # refused: no passport
        text = client.get("/metrics").text
    assert re.search(r'genoshare_request_seconds_count\{method="GET",route="/ga4gh/drs/v1/objects/\{object_id\}"', text)
    assert re.search(r'genoshare_access_denials_total\{action="drs",code="\w+"\} [1-9]', text)
    chain = re.search(r"^genoshare_audit_chain_length (\d+)", text, re.MULTILINE)
    assert chain and int(chain.group(1)) > 0
    assert re.search(r"^genoshare_rederivations_pending 0", text, re.MULTILINE)
    # Paths a client sent never become labels (a ticket or a secret would be kept in memory and served).
    assert "/data/" not in text.replace("/data/{", "")


def test_ready_names_what_failed(tmp_path: Path, serve: type[Server]) -> None:
    from genoshare.node import init_node
    from genoshare.settings import load_settings

    directory = tmp_path / "node"
    init_node(load_settings(directory, database_url="")).close()
    server = serve(directory, {"GENOSHARE_DATABASE_URL": ""})
    assert httpx.get(f"{server.url}/health").json() == {"status": "ok"}
    ready = httpx.get(f"{server.url}/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": "ok", "objects": "ok", "keys": "ok"}
    (directory / "keys" / "audit.key").rename(directory / "audit.key.moved")
    try:
        broken = httpx.get(f"{server.url}/ready")
        assert broken.status_code == 503
        assert broken.json()["status"] == "unavailable"
        assert "audit.key" in broken.json()["checks"]["keys"] and broken.json()["checks"]["database"] == "ok"
    finally:
        (directory / "audit.key.moved").rename(directory / "keys" / "audit.key")
