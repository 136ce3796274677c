"""Public datasets stored unencrypted: ingested as they are, sliced and served like encrypted ones.

Checked on SQLite and PostgreSQL (the ``node`` fixture): what a steward sees (the CLI option, refused for
controlled and registered datasets), what is on disk (the file itself, not Crypt4GH), and what a client gets
(whole files equal to the originals with the DRS checksums of the plaintext, region slices holding exactly
the records pysam fetches from the original, a clear refusal of encryptionScheme=C4GH, and every ticket and
range in the audit log).
"""

from __future__ import annotations

import base64
import hashlib
from collections import Counter
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from htsget_oracle import DEMO_DATASETS, SUFFIX, expected, overlapping, records_of
from typer.testing import CliRunner

from genoshare.cli.main import app
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.demo.setup import demo_files
from genoshare.errors import InvalidInput
from genoshare.node import Node, build_ingestor
from genoshare.store import blobs
from genoshare.store.models import DataObject, Dataset

from support import HTSGET_DATA, PUBLIC_URL

BAM_ID, VCF_ID = "htsnexus_test_NA12878", "spec-v4.3"
DEMO = {ds.name: ds for ds in DEMO_DATASETS}
BOB_PUB = base64.b64encode((HTSGET_DATA / "c4gh" / "keys" / "bob.pub").read_bytes()).decode()


def _create(node: Node, dataset_id: str, level: str, store_plaintext: bool = False) -> None:
    DatasetService(node.database).create(
        NewDataset(
            id=dataset_id,
            title=dataset_id,
            custodian="C",
            access_level=level,
            duo_codes=["GRU"],
            pseudonymise=False,
            store_plaintext=store_plaintext,
        )
    )


def _plaintext_dataset(node: Node) -> list[DataObject]:
    _create(node, "open", "public", store_plaintext=True)
    return build_ingestor(node).ingest("open", demo_files()).published


def _follow(client: TestClient, body: dict) -> bytes:
    out = bytearray()
    for entry in body["htsget"]["urls"]:
        url = entry["url"]
        if url.startswith("data:"):
            out += base64.b64decode(url.split(",", 1)[1])
            continue
        response = client.get(url.removeprefix(PUBLIC_URL), headers=entry.get("headers", {}))
        assert response.status_code in (200, 206), response.text
        out += response.content
    return bytes(out)


def _ticket(client: TestClient, path: str) -> dict:
    response = client.get(f"/htsget/{path}")
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_files_are_stored_as_they_are(node: Node) -> None:
    published = _plaintext_dataset(node)
    originals = {path.name: path.read_bytes() for path in demo_files()}
    assert {row.name for row in published} == set(originals)
    for row in published:
        stored = node.objects.read_bytes(row.blob_key)
        assert not stored.startswith(b"crypt4gh")
        assert stored == originals[row.name]
        assert row.sha256 == hashlib.sha256(stored).hexdigest()


@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_whole_files_and_drs_checksums_are_the_originals(node: Node, client: TestClient) -> None:
    published = {row.name: row for row in _plaintext_dataset(node)}
    for path, original in [
        (f"reads/{BAM_ID}", "bam/htsnexus_test_NA12878.bam"),
        (f"reads/{BAM_ID}?format=CRAM", "cram/htsnexus_test_NA12878.cram"),
        (f"variants/{VCF_ID}", "vcf/spec-v4.3.vcf.gz"),
        (f"variants/{VCF_ID}?format=BCF", "bcf/spec-v4.3.bcf"),
    ]:
        body = _ticket(client, path)
        data = _follow(client, body)
        assert data == (HTSGET_DATA / original).read_bytes()
        assert body["htsget"]["md5"] == hashlib.md5(data).hexdigest()
    row = published["htsnexus_test_NA12878.bam"]
    drs = client.get(f"/ga4gh/drs/v1/objects/{row.id}").json()
    original = (HTSGET_DATA / "bam" / "htsnexus_test_NA12878.bam").read_bytes()
    assert {c["type"]: c["checksum"] for c in drs["checksums"]} == {
        "sha-256": hashlib.sha256(original).hexdigest(),
        "md5": hashlib.md5(original).hexdigest(),
    }
    assert drs["size"] == len(original)
    access = client.get(f"/ga4gh/drs/v1/objects/{row.id}/access/https").json()
    headers = dict(header.split(": ", 1) for header in access["headers"])
    ranged = client.get(access["url"].removeprefix(PUBLIC_URL), headers={**headers, "Range": "bytes=100-4099"})
    assert ranged.status_code == 206
    assert ranged.content == original[100:4100]


@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
@pytest.mark.parametrize(
    ("name", "endpoint", "id", "regions"),
    [
        ("demo-bam", "reads", BAM_ID, [("11", 4_999_000, 5_010_000), ("20", 0, 200_000), ("11", 5_100_000, 5_100_001)]),
        ("demo-cram", "reads", BAM_ID, [("11", 5_000_000, 5_050_000), ("20", 1_000_000, 1_100_000)]),
        ("demo-vcf-spec", "variants", VCF_ID, [("20", 14_000, 1_230_000), ("20", 17_000, 17_400)]),
        ("demo-bcf-spec", "variants", VCF_ID, [("20", 1_110_000, 1_240_000)]),
    ],
)
def test_slices_hold_exactly_what_pysam_fetches(
    node: Node, client: TestClient, tmp_path: Path, name: str, endpoint: str, id: str, regions: list
) -> None:
    _plaintext_dataset(node)
    ds = DEMO[name]
    for contig, start, end in regions:
        body = _ticket(client, f"{endpoint}/{id}?format={ds.fmt.value}&referenceName={contig}&start={start}&end={end}")
        answer = tmp_path / f"answer{SUFFIX[ds.fmt]}"
        answer.write_bytes(_follow(client, body))
        got = records_of(ds, answer)
        assert overlapping(got, contig, start, end) == expected(ds, contig, start, end), (contig, start, end)
        assert not Counter(key for key, *_ in got) - Counter(key for key, *_ in records_of(ds, ds.data))


def test_crypt4gh_is_refused_clearly_and_everything_is_audited(node: Node, client: TestClient) -> None:
    _plaintext_dataset(node)
    refused = client.get(
        f"/htsget/reads/{BAM_ID}?encryptionScheme=C4GH&referenceName=11", headers={"Htsget-Context-Public-Key": BOB_PUB}
    )
    assert refused.status_code == 400
    error = refused.json()["htsget"]
    assert error["error"] == "InvalidInput"
    assert "stored unencrypted" in error["message"]
    before = len(list(node.audit.entries(resource_prefix="objects/open.")))
    _follow(client, _ticket(client, f"reads/{BAM_ID}?referenceName=11&start=5000000&end=5010000"))
    actions = [entry.action for entry in node.audit.entries(resource_prefix="objects/open.")][before:]
    assert actions[0] == "htsget.reads"
    assert actions.count("data.read") >= 1
    assert node.audit.verify().ok


@pytest.mark.parametrize("level", ["controlled", "registered"])
def test_only_public_datasets_may_store_plaintext(node: Node, level: str) -> None:
    with pytest.raises(InvalidInput, match="only for public datasets"):
        _create(node, "closed", level, store_plaintext=True)
    assert DatasetService(node.database).list() == [], "a refused dataset is not half-created"
    _create(node, "closed", level)
    # A flag set behind the node's back (say, by hand in the database) still never stores such files unencrypted.
    with node.database.session() as session:
        dataset = session.get(Dataset, "closed")
        assert dataset is not None and not dataset.store_plaintext
        dataset.store_plaintext = True
    with pytest.raises(InvalidInput, match="only for public datasets"):
        build_ingestor(node).ingest("closed", demo_files()[:1])
    assert DatasetService(node.database).objects("closed") == []


def test_cli_option(node: Node) -> None:
    runner = CliRunner()
    env = {"GENOSHARE_DATABASE_URL": node.settings.database_url}
    base = ["datasets", "create", "--title", "T", "--custodian", "C", "--duo", "GRU"]
    base += ["--data-dir", str(node.settings.data_dir), "--store-plaintext"]
    refused = runner.invoke(app, [*base[:2], "closed", *base[2:], "--access", "controlled"], env=env)
    assert refused.exit_code == 1
    assert "only for public datasets" in refused.output
    assert "Traceback" not in refused.output
    assert DatasetService(node.database).list() == []
    created = runner.invoke(app, [*base[:2], "open", *base[2:], "--access", "public"], env=env)
    assert created.exit_code == 0, created.output
    assert "stored unencrypted" in created.output
    assert DatasetService(node.database).get("open").store_plaintext


def test_pieces_the_page_cache_lacks_come_from_a_thread(
    node: Node, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without RWF_NOWAIT (or on a cache miss) every piece is read in a worker thread; same bytes."""
    monkeypatch.setattr(blobs, "_NOWAIT", 0)
    _plaintext_dataset(node)
    data = _follow(client, _ticket(client, f"reads/{BAM_ID}"))
    assert data == (HTSGET_DATA / "bam" / "htsnexus_test_NA12878.bam").read_bytes()
