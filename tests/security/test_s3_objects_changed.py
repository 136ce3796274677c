"""Objects changed behind the node's back in its S3 store, attacked through ``genoshare serve``.

Issue 19: whoever else can write the bucket (a careless script, a compromised tool) may replace or delete an
object the node is serving. The node must then fail the read honestly rather than serve other bytes as the
file its DRS record (and the ticket's checksum) describes: a download must never mix two versions. A
replacement of the same length matters most, as the S3 reader follows a new ETag of the same length for a
node-key rotation (which rewrites only a Crypt4GH header); for a plaintext object (a public dataset stored
unencrypted) nothing legitimate does that.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import httpx
import pytest

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_ingestor, init_node
from genoshare.settings import load_settings
from objects_s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server, s3_server

from processes import Server
from support import HTSGET_DATA, PUBLIC_URL

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
BCF = HTSGET_DATA / "bcf" / "spec-v4.3.bcf"
CANCER = HTSGET_DATA / "bcf" / "sample1-bcbio-cancer.bcf"
DRS = "/ga4gh/drs/v1"


@dataclass
class Served:
    store: S3Server
    bucket: str
    server: Server
    #: DRS id -> the object's key in the bucket.
    keys: dict[str, str]

    def bucket_client(self) -> Any:
        """Someone else who can write the node's bucket."""
        return boto3.client(
            "s3",
            endpoint_url=self.store.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )

    def ticket(self, http: httpx.Client, object_id: str) -> tuple[str, dict[str, str]]:
        access = http.get(f"{self.server.url}{DRS}/objects/{object_id}/access/https")
        assert access.status_code == 200, access.text
        url = access.json()["url"].replace(PUBLIC_URL, self.server.url)
        return url, dict(line.split(": ", 1) for line in access.json()["headers"])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One node on S3 with two public datasets, one stored unencrypted and one encrypted, served once."""
    tmp = tmp_path_factory.mktemp("s3-changed")
    with s3_server(tmp / "moto.log") as store:
        bucket = store.new_bucket()
        settings = load_settings(
            tmp / "node",
            public_url=PUBLIC_URL,
            environment="test",
            objects_url=f"s3://{bucket}/node",
            s3=store.settings(),
        )
        node = init_node(settings)
        datasets = DatasetService(node.database)
        keys = {}
        for name, plaintext in (("plain", True), ("sealed", False)):
            datasets.create(
                NewDataset(name, name, "C", "public", ["NRES"], pseudonymise=False, store_plaintext=plaintext)
            )
            files = [tmp / f"{name}-{source.name}" for source in (VCF, BCF, CANCER)]
            for source, copy in zip((VCF, BCF, CANCER), files, strict=True):
                copy.write_bytes(source.read_bytes())
            for row in build_ingestor(node).ingest(name, files).published:
                keys[row.id] = f"node/{row.blob_key}"
        node.close()
        server = Server(tmp / "node", store.env(), public_url=PUBLIC_URL)
        try:
            yield Served(store, bucket, server, keys)
        finally:
            server.stop()


def _read(http: httpx.Client, url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """Status and body of a read; a stream the server cut after its headers reads as status 0."""
    try:
        answer = http.get(url, headers=headers)
    except httpx.HTTPError:
        return 0, b""
    return answer.status_code, answer.content


@pytest.mark.parametrize("dataset", ["plain", "sealed"])
def test_a_same_length_replacement_is_never_served_as_the_file(served: Served, dataset: str) -> None:
    object_id = f"{dataset}.{dataset}-spec-v4.3.vcf.gz"
    original = VCF.read_bytes()
    bucket = served.bucket_client()
    with httpx.Client(timeout=30) as http:
        url, ticket = served.ticket(http, object_id)
        first = http.get(url, headers={**ticket, "Range": "bytes=0-99"})
        assert first.status_code == 206 and first.content == original[:100]
        # Someone else writes other bytes of the same length under the object's key.
        stored = bucket.head_object(Bucket=served.bucket, Key=served.keys[object_id])["ContentLength"]
        bucket.put_object(Bucket=served.bucket, Key=served.keys[object_id], Body=bytes(stored))
        status, body = _read(http, url, {**ticket, "Range": "bytes=100-199"})
        assert not (status == 206 and body != original[100:200]), "the next range came from the other bytes"
        assert status != 206, f"{status}: the replaced object was served"


def test_a_deleted_object_is_an_honest_error(served: Served) -> None:
    object_id = "plain.plain-spec-v4.3.bcf"
    with httpx.Client(timeout=30) as http:
        url, ticket = served.ticket(http, object_id)
        assert http.get(url, headers={**ticket, "Range": "bytes=0-99"}).status_code == 206
        served.bucket_client().delete_object(Bucket=served.bucket, Key=served.keys[object_id])
        status, _ = _read(http, url, {**ticket, "Range": "bytes=100-199"})
        assert status in (0, 404), status


@pytest.mark.parametrize("dataset", ["plain", "sealed"])
def test_other_bytes_put_before_the_node_read_the_file_are_not_served_as_it(served: Served, dataset: str) -> None:
    """Replaced before this server ever opened it: its ETag is not the one the node recorded at the upload."""
    object_id = f"{dataset}.{dataset}-sample1-bcbio-cancer.bcf"
    bucket = served.bucket_client()
    key = served.keys[object_id]
    other = bucket.get_object(Bucket=served.bucket, Key=key)["Body"].read() + b"appended by someone else"
    bucket.put_object(Bucket=served.bucket, Key=key, Body=other)
    with httpx.Client(timeout=30) as http:
        url, ticket = served.ticket(http, object_id)
        answer = http.get(url, headers=ticket)
    assert answer.status_code == 502, f"{answer.status_code}: other bytes were served as the file"
    assert "changed outside the node" in answer.text
