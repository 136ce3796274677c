"""Files staged side by side in worker processes (``ingest --jobs``) publish what the serial ingest publishes.

Two nodes share one pseudonym secret; one ingests the htsget test files (BAM, CRAM, two VCFs, their BCF
copies, pseudonymised) with one job, the other with two. A researcher with a grant must get the same DRS
objects, the same bytes from DRS and the same Beacon answers, allele by allele, from both; people must be
numbered alike. A bad file among good ones, with two jobs, publishes nothing and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pysam
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from genoshare.access.issuer import VisaIssuer
from genoshare.api.app import create_app
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import PSEUDONYM_KEY_FILE, Node, build_ingestor, init_node
from genoshare.store.beacon_tables import BeaconIndividual
from genoshare.store.models import PendingRemoval

from processes import run_cli
from support import HTSGET_DATA, Passports, bearer, trusting_settings

FILES = [
    HTSGET_DATA / "bam" / "htsnexus_test_NA12878.bam",
    HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz",
    HTSGET_DATA / "cram" / "htsnexus_test_NA12878.cram",
    HTSGET_DATA / "vcf" / "sample1-bcbio-cancer.vcf.gz",
    HTSGET_DATA / "bcf" / "spec-v4.3.bcf",
    HTSGET_DATA / "bcf" / "sample1-bcbio-cancer.bcf",
]
VCFS = [path for path in FILES if path.name.endswith(".vcf.gz")]
DRS = "/ga4gh/drs/v1"


def _node(root: Path, issuer: VisaIssuer, secret: bytes | None) -> Node:
    root.mkdir()
    node = init_node(trusting_settings(root, issuer))
    if secret is not None:
        (node.settings.keys_dir / PSEUDONYM_KEY_FILE).write_bytes(secret)
    DatasetService(node.database).create(NewDataset("cohort", "Cohort", "Test Institute", "controlled", ["GRU"]))
    return node


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, issuer: VisaIssuer) -> Iterator[dict[int, Any]]:
    """jobs -> (node, client): the same files ingested with one job and with two."""
    root = tmp_path_factory.mktemp("parallel-ingest")
    serial = _node(root / "serial", issuer, None)
    build_ingestor(serial).ingest("cohort", FILES, jobs=1)
    parallel = _node(root / "parallel", issuer, (serial.settings.keys_dir / PSEUDONYM_KEY_FILE).read_bytes())
    build_ingestor(parallel).ingest("cohort", FILES, jobs=2)
    with TestClient(create_app(serial)) as one, TestClient(create_app(parallel)) as two:
        yield {1: (serial, one), 2: (parallel, two)}
    serial.close()
    parallel.close()


def _drs_object(client: TestClient, object_id: str, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"{DRS}/objects/{object_id}", headers=headers)
    assert response.status_code == 200, response.text
    return {key: value for key, value in response.json().items() if not key.endswith("_time")}


def _download(client: TestClient, object_id: str, headers: dict[str, str]) -> bytes:
    access = client.get(f"{DRS}/objects/{object_id}/access/https", headers=headers).json()
    response = client.get(
        access["url"].removeprefix("http://testserver"),
        headers={**headers, **dict(line.split(": ", 1) for line in access["headers"])},
    )
    assert response.status_code == 200, response.text
    return response.content


def test_two_jobs_serve_the_same_drs_objects_and_bytes(nodes: dict[int, Any], issuer: VisaIssuer) -> None:
    headers = bearer(Passports(issuer).with_grant("cohort"))
    listed = {jobs: client.get(f"{DRS}/objects/cohort", headers=headers).json() for jobs, (_, client) in nodes.items()}
    ids = [item["id"] for item in listed[1]["contents"]]
    assert len(ids) == len(FILES)
    assert [item["id"] for item in listed[2]["contents"]] == ids
    for object_id in ids:
        one, two = (_drs_object(nodes[jobs][1], object_id, headers) for jobs in (1, 2))
        assert one == two
        data = [_download(nodes[jobs][1], object_id, headers) for jobs in (1, 2)]
        assert hashlib.sha256(data[0]).hexdigest() == hashlib.sha256(data[1]).hexdigest()
        assert {c["checksum"] for c in one["checksums"]} >= {hashlib.sha256(data[0]).hexdigest()}


def test_two_jobs_number_people_alike(nodes: dict[int, Any]) -> None:
    people = {}
    for jobs, (node, _) in nodes.items():
        with node.database.sessions() as session:
            people[jobs] = sorted(session.execute(select(BeaconIndividual.pseudonym, BeaconIndividual.sample_number)))
    assert people[1] == people[2]
    assert len(people[1]) >= 4  # NA00001-3 of the spec VCF and the cancer sample(s)


def _g_variants(parameters: dict[str, Any], granularity: str = "record") -> dict[str, Any]:
    return {
        "meta": {"apiVersion": "v2.0.0", "requestedGranularity": granularity},
        "query": {"requestParameters": parameters, "pagination": {"skip": 0, "limit": 0}},
    }


def test_two_jobs_give_the_same_beacon_answers(nodes: dict[int, Any], issuer: VisaIssuer) -> None:
    headers = bearer(Passports(issuer).with_grant("cohort"))
    asked = found = 0
    for vcf in VCFS:
        with pysam.VariantFile(str(vcf)) as records:
            alleles = [(r.chrom, r.start, r.ref, alt) for r in records for alt in r.alts or ()]
        for contig, start, ref, alt in alleles:
            body = _g_variants(
                {"referenceName": contig, "start": [start], "referenceBases": ref, "alternateBases": alt}
            )
            answers = [nodes[jobs][1].post("/api/g_variants", json=body, headers=headers) for jobs in (1, 2)]
            assert answers[0].status_code == 200, answers[0].text
            assert answers[0].json() == answers[1].json(), body
            asked += 1
            found += answers[0].json()["responseSummary"]["exists"]
    assert asked >= 10 and found >= 10
    for granularity in ("record", "count", "boolean"):
        body = _g_variants({"referenceName": "20", "start": [0], "end": [100_000_000]}, granularity)
        answers = [nodes[jobs][1].post("/api/g_variants", json=body, headers=headers).json() for jobs in (1, 2)]
        assert answers[0] == answers[1]
    individuals = [nodes[jobs][1].get("/api/individuals", headers=headers).json() for jobs in (1, 2)]
    assert individuals[0] == individuals[1]
    assert individuals[0]["responseSummary"]["exists"]


def test_a_bad_file_among_good_ones_publishes_nothing_with_two_jobs(node: Node, tmp_path: Path) -> None:
    DatasetService(node.database).create(NewDataset("cohort", "Cohort", "Test Institute", "controlled", ["GRU"]))
    bad = tmp_path / "truncated.bam"
    bad.write_bytes(FILES[0].read_bytes()[: FILES[0].stat().st_size // 2])
    result = run_cli(
        "ingest",
        "cohort",
        *map(str, [FILES[0], FILES[1], bad, FILES[2], FILES[3]]),
        "--jobs",
        "2",
        "--data-dir",
        str(node.settings.data_dir),
        env={"GENOSHARE_DATABASE_URL": node.settings.database_url},
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert [line for line in result.stderr.splitlines() if line.strip()] == [
        f"error: {bad.name}: truncated: the BGZF end-of-file marker is missing"
    ]
    assert DatasetService(node.database).objects("cohort") == []
    assert list(node.objects.staging_dir().iterdir()) == []
    assert node.objects.keys("blobs/") == node.objects.keys("indexes/") == []
    with node.database.sessions() as session:
        assert list(session.scalars(select(PendingRemoval))) == []


def test_a_file_named_twice_publishes_once_with_two_jobs(node: Node, tmp_path: Path) -> None:
    """Both copies may be staged at once; as with one job, the first is published and the second unchanged."""
    DatasetService(node.database).create(NewDataset("cohort", "Cohort", "Test Institute", "controlled", ["GRU"]))
    copy = tmp_path / "copy-of-spec.vcf.gz"
    copy.write_bytes(FILES[1].read_bytes())
    result = build_ingestor(node).ingest("cohort", [FILES[1], copy, FILES[3]], jobs=2)
    assert [row.name for row in result.published] == ["spec-v4.3.vcf.gz", "sample1-bcbio-cancer.vcf.gz"]
    assert result.unchanged == ["spec-v4.3.vcf.gz"]
    assert list(node.objects.staging_dir().iterdir()) == []
