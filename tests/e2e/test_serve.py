"""A real ``genoshare serve`` process (uvicorn) hands controlled bytes to a passport holder, and only to them."""

from __future__ import annotations

import hashlib

import httpx

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor

from support import HTSGET_DATA

BAM = HTSGET_DATA / "bam" / "htsnexus_test_NA12878.bam"


def test_controlled_object_through_drs_over_http(node: Node, issuer: VisaIssuer, serve) -> None:
    DatasetService(node.database).create(
        NewDataset(
            id="cohort1", title="T", custodian="C", access_level="controlled", duo_codes=["GRU"], pseudonymise=False
        )
    )
    build_ingestor(node).ingest("cohort1", [BAM])
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    passport = issuer.passport(
        "alice",
        [
            issuer.visa("alice", RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so"),
            issuer.visa("alice", CONTROLLED_ACCESS_GRANTS, f"{server.url}/datasets/cohort1"),
        ],
    )
    object_url = f"{server.url}/ga4gh/drs/v1/objects/cohort1.htsnexus_test_NA12878.bam"
    with httpx.Client(timeout=30) as http:
        assert http.get(object_url).status_code == 401
        auth = {"Authorization": f"Bearer {passport}"}
        described = http.get(object_url, headers=auth).json()
        sha = {c["type"]: c["checksum"] for c in described["checksums"]}["sha-256"]
        access = http.get(f"{object_url}/access/https", headers=auth).json()
        assert access["url"].startswith(server.url + "/data/")
        headers = dict(line.split(": ", 1) for line in access["headers"])
        body = http.get(access["url"], headers=headers)
        assert body.status_code == 200
        assert body.content == BAM.read_bytes()
        assert hashlib.sha256(body.content).hexdigest() == sha
        part = http.get(access["url"], headers={**headers, "Range": "bytes=1000000-1999999"})
        assert part.status_code == 206
        assert part.content == BAM.read_bytes()[1_000_000:2_000_000]
    log = server.stop()
    assert "eyJ" not in log, "no token may reach the server log"
    assert node.audit.verify().ok
