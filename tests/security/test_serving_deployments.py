"""`genoshare serve` as deployments run it, through real server processes: TLS, a proxy with a path prefix
(``--root-path``, ``--proxy-headers``), CORS per route group, several workers.

What is attacked: a URL handed out without the proxy's prefix (clients would reach the wrong service), a
client address forged in ``X-Forwarded-For`` from a host that is not the proxy, CORS allowed where the
operator did not allow it (any web page could read DRS answers with a visitor's passport).
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from processes import STARTUP_SECONDS, Server, run_cli

pytestmark = pytest.mark.slow

VCF = Path(__file__).resolve().parents[2] / "src" / "genoshare" / "demo" / "data" / "htsget" / "vcf"
PREFIX = "/genoshare"
UI = "https://beacon-ui.example.org"
ENV = {"GENOSHARE_DATABASE_URL": ""}


def self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "cert.pem", directory / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_file, key_file


def trusting(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


@dataclass
class Deployed:
    server: Server
    cert: Path
    object_id: str

    @property
    def public_url(self) -> str:
        return self.server.url + PREFIX


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("deploy") / "node"
    steps = [
        ("init", "-d", str(directory)),
        ("datasets", "create", "pub", "--title", "T", "--custodian", "C", "--duo", "NRES", "--access", "public"),
        ("ingest", "pub", str(VCF / "spec-v4.3.vcf.gz")),
    ]
    for step in steps:
        done = run_cli(*step, *(("-d", str(directory)) if step[0] != "init" else ()), env=ENV)
        assert done.returncode == 0, done.stderr
    return directory


@pytest.fixture(scope="module")
def deployed(node_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    cert, key = self_signed(tmp_path_factory.mktemp("tls"))
    args = ["--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--root-path", PREFIX]
    args += ["--proxy-headers", "--forwarded-allow-ips", "127.0.0.1", "--workers", "2"]
    env = {**ENV, "GENOSHARE_CORS__BEACON": json.dumps([UI])}
    server = Server(node_dir, env, args=args, scheme="https", prefix=PREFIX)
    try:
        with httpx.Client(base_url=server.url, verify=trusting(cert)) as client:
            bundle = client.get("/ga4gh/drs/v1/objects/pub").json()
        yield Deployed(server, cert, bundle["contents"][0]["id"])
    finally:
        server.stop()


def test_tls_serves_https_only(deployed: Deployed) -> None:
    assert httpx.get(f"{deployed.server.url}/health", verify=trusting(deployed.cert)).json() == {"status": "ok"}
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{deployed.server.port}/health", timeout=5)


def test_every_url_handed_out_keeps_the_public_prefix(deployed: Deployed) -> None:
    """The proxy strips ``/genoshare``: the node is asked at /..., and must answer with /genoshare/... URLs."""
    with httpx.Client(base_url=deployed.server.url, verify=trusting(deployed.cert)) as client:
        info = client.get("/service-info").json()
        assert info["organization"]["url"] == deployed.public_url
        access = client.get(f"/ga4gh/drs/v1/objects/{deployed.object_id}/access/https").json()
        assert access["url"] == f"{deployed.public_url}/data/{deployed.object_id}"
        described = client.get(f"/ga4gh/drs/v1/objects/{deployed.object_id}").json()
        assert described["self_uri"] == f"drs://127.0.0.1:{deployed.server.port}/{deployed.object_id}"
        alias = next(alias for alias in described["aliases"] if alias.startswith("htsget:"))
        ticket = client.get(f"/htsget/{alias.removeprefix('htsget:')}").json()["htsget"]
        assert ticket["urls"] and all(url["url"].startswith(f"{deployed.public_url}/data/") for url in ticket["urls"])
        # What the proxy would forward of that URL: the prefix stripped. The ticket opens the bytes.
        path = access["url"].removeprefix(deployed.public_url)
        headers = dict(header.split(": ", 1) for header in access.get("headers", []))
        assert client.get(path, headers=headers).status_code == 200
        home = client.get("/")
        assert home.status_code in (303, 307) and home.headers["location"].startswith(f"{PREFIX}/portal")


def test_forwarded_client_address_is_believed_only_from_the_proxy(deployed: Deployed) -> None:
    with httpx.Client(base_url=deployed.server.url, verify=trusting(deployed.cert)) as client:
        client.get("/service-info", headers={"X-Forwarded-For": "203.0.113.9", "X-Request-ID": "via-proxy"})
    # The server writes its access line after the answer has left: wait for it rather than race it.
    deadline = time.monotonic() + 10
    while True:
        entries = [json.loads(line) for line in deployed.server.log.splitlines() if line.startswith("{")]
        logged = [entry for entry in entries if entry.get("request_id") == "via-proxy"]
        if logged or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert logged and logged[0]["client"] == "203.0.113.9"


def test_cors_only_where_allowed(deployed: Deployed) -> None:
    preflight = {"Origin": UI, "Access-Control-Request-Method": "POST"}
    preflight["Access-Control-Request-Headers"] = "authorization"
    with httpx.Client(base_url=deployed.server.url, verify=trusting(deployed.cert)) as client:
        beacon = client.options("/api/g_variants", headers=preflight)
        assert beacon.status_code == 200 and beacon.headers["access-control-allow-origin"] == UI
        assert "access-control-allow-credentials" not in beacon.headers
        elsewhere = client.options("/api/g_variants", headers={**preflight, "Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in elsewhere.headers
        drs = client.get(f"/ga4gh/drs/v1/objects/{deployed.object_id}", headers={"Origin": UI})
        assert drs.status_code == 200 and "access-control-allow-origin" not in drs.headers


def test_by_default_no_cors_and_no_forwarded_addresses(node_dir: Path, serve: type[Server]) -> None:
    server = serve(node_dir, ENV)
    with httpx.Client(base_url=server.url) as client:
        answer = client.get("/api/info", headers={"Origin": UI, "X-Forwarded-For": "203.0.113.9", "X-Request-ID": "d"})
        assert answer.status_code == 200 and "access-control-allow-origin" not in answer.headers
    entries = [json.loads(line) for line in server.stop().splitlines() if line.startswith("{")]
    assert [entry["client"] for entry in entries if entry.get("request_id") == "d"] == ["127.0.0.1"]


def test_two_workers_both_answer(deployed: Deployed) -> None:
    # The node is ready when its first worker answers; the second may still be starting: wait for it.
    deadline = time.monotonic() + STARTUP_SECONDS
    while True:
        started = [line for line in deployed.server.log.splitlines() if "Started server process" in line]
        if len(started) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert len(started) == 2, deployed.server.log[-2000:]
