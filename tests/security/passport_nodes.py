"""Nodes and a broker for the passport attacks: a node with a registered and a controlled dataset, served by
``genoshare serve``, and the loopback broker of ``broker.py`` in its own process."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import RESEARCHER_STATUS
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_ingestor, init_node
from genoshare.settings import BONA_FIDE_RESEARCHER, TrustedIssuer, load_settings

from processes import free_port
from support import HTSGET_DATA, TEST_ISSUER

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
#: The DAC whose grants the nodes below accept (besides their own committees').
DAC = "https://dac.test.genoshare.invalid/committees/1"
REGISTERED, CONTROLLED = "registered", "controlled"


def build_node(root: Path, issuer: VisaIssuer, *, brokers: Sequence[TrustedIssuer] = (), **passports: Any) -> Path:
    """A node trusting the test issuer (and ``brokers``), with one VCF in a registered and a controlled dataset."""
    issuer.write_jwks(root / "issuer-jwks.json")
    policy = {"controlled_access_grants": {"issuers": [TEST_ISSUER], "sources": [DAC]}, **passports}
    settings = load_settings(
        root / "node",
        environment="test",
        trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=root / "issuer-jwks.json"), *brokers],
        passports=policy,
    )
    node = init_node(settings)
    datasets = DatasetService(node.database)
    for level in (REGISTERED, CONTROLLED):
        datasets.create(
            NewDataset(id=level, title=level, custodian="C", access_level=level, duo_codes=["GRU"], pseudonymise=False)
        )
        copy = root / f"{level}.vcf.gz"  # htsget ids are node-wide: one name per dataset
        copy.write_bytes(VCF.read_bytes())
        build_ingestor(node).ingest(level, [copy])
    node.close()
    return settings.data_dir


def object_id(dataset: str) -> str:
    return f"{dataset}.{dataset}.vcf.gz"


def access(server_url: str, dataset: str, token: str) -> httpx.Response:
    """A DRS access URL for the dataset's file: 200 with the passport's rights, 401/403 without."""
    url = f"{server_url}/ga4gh/drs/v1/objects/{object_id(dataset)}/access/https"
    return httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def researcher_visa(issuer: VisaIssuer, subject: str, **options: Any) -> str:
    return issuer.visa(subject, RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, **{"by": "so", **options})


class BrokerProcess:
    """``broker.py`` on a free loopback port."""

    def __init__(self, client_id: str | None = None, client_secret: str | None = None) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, str(Path(__file__).with_name("broker.py")), "--port", str(port)]
        if client_id and client_secret:
            command += ["--client-id", client_id, "--client-secret", client_secret]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"broker exited: {self.process.stdout.read() if self.process.stdout else ''}")
            try:
                httpx.get(f"{self.url}/.well-known/openid-configuration", timeout=1).raise_for_status()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        self.http = httpx.Client(base_url=self.url, timeout=10)
        self.reset_calls()

    def login(self, subject: str, visas: list[str], **options: Any) -> str:
        """A passport-scoped access token for ``subject``, whose UserInfo will hold ``visas``."""
        body = {"sub": subject, "visas": visas, **options}
        return str(self.http.post("/admin/login", json=body).raise_for_status().json()["access_token"])

    def calls(self, endpoint: str | None = None) -> list[dict[str, str]]:
        calls = self.http.get("/admin/stats").raise_for_status().json()["calls"][self._seen :]
        return [call for call in calls if endpoint is None or call["endpoint"] == endpoint]

    def reset_calls(self) -> None:
        self._seen = 0
        self._seen = len(self.calls())

    def rotate(self) -> None:
        self.http.post("/admin/rotate").raise_for_status()

    def revoke(self, token: str) -> None:
        self.http.post("/admin/revoke", json={"token": token}).raise_for_status()

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.http.close()
        self.process.terminate()
        try:
            self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.communicate()
