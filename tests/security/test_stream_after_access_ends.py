"""A single long GET of controlled data, while access ends under it, through ``genoshare serve``.

Issue 12: a download kept streaming after a revocation or a withdrawal (documented as "at the next range",
but curl, wget, browsers and most DRS clients send one GET).  Here a client reads a 24 MiB object at
4 MiB/s over one connection, with a small receive buffer, and mid-download its grant is revoked, its ticket
expires, or the only participant in the file withdraws: each time the server must cut the transfer short
of its ``Content-Length`` within seconds (it re-checks every 0.5 s here), and audit the cut.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from big_files import long_read_bam
from sqlalchemy import select

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import RESEARCHER_STATUS
from genoshare.access.tickets import Ticket
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_consent, build_ingestor
from genoshare.store.models import Participant

from support import OPERATOR, TEST_ISSUER

CHAIR = "dac-chair"
DRS = "/ga4gh/drs/v1"
RATE = 4 << 20  # bytes a second the client reads
PIECE = 64 << 10
BEFORE = 2 << 20  # bytes read before access ends


@pytest.fixture(scope="module")
def bam(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return long_read_bam(tmp_path_factory.mktemp("bam") / "person.bam", "S1", 24)


def passport(issuer: VisaIssuer, subject: str) -> dict[str, str]:
    visa = issuer.visa(subject, RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so")
    return {"Authorization": f"Bearer {issuer.passport(subject, [visa])}"}


class SlowDownload:
    """One GET over a raw socket with a 64 KiB receive buffer, read at ``RATE``; ``access_ends`` mid-way."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        host_port, path = url.split("://", 1)[1].split("/", 1)
        host, port = host_port.split(":")
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PIECE)
        self.sock.settimeout(30)
        self.sock.connect((host, int(port)))
        lines = [f"GET /{path} HTTP/1.1", f"Host: {host_port}", *(f"{k}: {v}" for k, v in headers.items())]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        status, *fields = head.decode().split("\r\n")
        assert status.startswith("HTTP/1.1 200"), head
        self.size = int(next(f for f in fields if f.lower().startswith("content-length:")).split(":")[1])
        self.received = 0

    def read(self, until: int | None = None) -> None:
        """Read at ``RATE`` until ``until`` bytes arrived, or to the end of the connection."""
        start, got = time.monotonic(), 0
        while until is None or self.received < until:
            piece = self.sock.recv(PIECE)
            if not piece:
                return
            self.received += len(piece)
            got += len(piece)
            time.sleep(max(0.0, start + got / RATE - time.monotonic()))

    def run(self, access_ends: Callable[[], None]) -> tuple[int, float]:
        """Bytes received after access ended, and the seconds until the server cut the connection."""
        self.read(until=BEFORE)
        access_ends()
        ended, at = time.monotonic(), self.received
        self.read()
        self.sock.close()
        return self.received - at, time.monotonic() - ended


def assert_cut(download: SlowDownload, after: int, seconds: float) -> None:
    assert download.received < download.size, "the whole object was sent after access ended"
    assert seconds < 5, f"the stream went on {seconds:.1f} s after access ended"
    # What was in flight: the socket buffers and a piece or two, far from the 22 MiB left.
    assert after < 12 << 20, f"{after} bytes sent after access ended"


def test_a_single_get_stops_when_access_ends(
    node: Node, issuer: VisaIssuer, serve: Any, bam: Path, tmp_path: Path
) -> None:
    DatasetService(node.database).create(
        NewDataset(id="study", title="Study", custodian="Hospital", access_level="controlled", duo_codes=["GRU"])
    )
    DatasetService(node.database).set_committee("study", [f"{CHAIR}@{TEST_ISSUER}"], auto_approve=False)
    reads = build_ingestor(node).ingest("study", [bam]).published[0]
    with node.database.sessions() as session:
        person = session.scalars(select(Participant.pseudonym)).one()
    server = serve(
        node.settings.data_dir,
        {"GENOSHARE_DATABASE_URL": node.settings.database_url, "GENOSHARE_STREAM_RECHECK_SECONDS": "0.5"},
    )
    url, chair = server.url, passport(issuer, CHAIR)

    with httpx.Client(timeout=30) as http:

        def granted(name: str) -> tuple[str, dict[str, str]]:
            """An approved request's id, and a DRS access URL's headers for the file."""
            researcher = passport(issuer, name)
            body = {"datasets": ["study"], "purpose": {"primary": "GRU"}, "project_title": "p", "institution": "i"}
            request = http.post(f"{url}/governance/requests", headers=researcher, json=body).json()
            approved = http.post(f"{url}/governance/requests/{request['id']}/approve", json={}, headers=chair)
            assert approved.json()["status"] == "approved", approved.text
            signed = http.get(f"{url}/governance/passport", headers=researcher).json()["passport"]
            access = http.get(
                f"{url}{DRS}/objects/{reads.id}/access/https", headers={"Authorization": f"Bearer {signed}"}
            )
            assert access.status_code == 200, access.text
            return request["id"], dict(line.split(": ", 1) for line in access.json()["headers"])

        data_url = f"{url}/data/{reads.id}"

        # 1. The committee revokes the grant while the grantee downloads.
        request_id, ticket = granted("alice")
        download = SlowDownload(data_url, ticket)
        assert download.size == reads.size

        def revoke() -> None:
            revoked = http.post(
                f"{url}/governance/requests/{request_id}/revoke", json={"reason": "audit finding"}, headers=chair
            )
            assert revoked.status_code == 200, revoked.text

        assert_cut(download, *download.run(revoke))
        assert http.get(data_url, headers={**ticket, "Range": "bytes=0-9"}).status_code == 403

        # 2. The ticket expires mid-download (signed by the node's signer to expire in 2 s: the shortest
        #    ticket_ttl_seconds is 10).
        short = node.tickets.issue(Ticket("bob", reads.id, "study", (), int(time.time()) + 2))
        download = SlowDownload(data_url, {"Authorization": f"Bearer {short}"})
        assert_cut(download, *download.run(lambda: time.sleep(max(0.0, 2.5 - BEFORE / RATE))))

        # 3. The only participant in the file withdraws while a second grantee downloads it.
        _, ticket = granted("carol")
        download = SlowDownload(data_url, ticket)
        consent = build_consent(node)
        token = {"X-Consent-Token": consent.issue_link(consent.find("study", person), OPERATOR.actor)}

        def withdraw() -> None:
            withdrawn = http.post(f"{url}/consent/withdraw", headers=token)
            assert withdrawn.status_code == 200, withdrawn.text

        assert_cut(download, *download.run(withdraw))

    cuts = [
        event
        for event in node.audit.entries(resource_prefix=f"objects/{reads.id}")
        if event.decision == "deny" and event.reason.startswith("stopped mid-stream")
    ]
    assert len(cuts) == 3, [event.reason for event in cuts]
