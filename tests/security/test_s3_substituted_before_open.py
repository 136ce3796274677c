"""Bytes put in the bucket under a file's key before the node first opened it are never served (S3 store).

A reader pins the ETag it finds at its first open of an object; bytes that someone else who can write the
bucket put there before that first open were pinned as the file. For a file stored unencrypted any bytes
will do; for an encrypted one, a valid Crypt4GH file of the same length encrypted to the node's public key
(which is public) was decrypted and served as the file. Attacked through `genoshare serve` on a real S3
server process: both are substituted after the ingest, before any read; the node must refuse them with a
clear error, audit it, and still serve the file nobody touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import httpx

from genoshare.crypt.files import encrypt_file
from genoshare.crypt.keys import KeyPair, load_keypair
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor, init_node
from genoshare.settings import load_settings
from objects_s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server

from processes import Server
from support import HTSGET_DATA, PUBLIC_URL

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
OTHER = HTSGET_DATA / "bcf" / "spec-v4.3.bcf"
DRS = "/ga4gh/drs/v1"


def read(http: httpx.Client, server: Server, object_id: str) -> httpx.Response:
    access = http.get(f"{server.url}{DRS}/objects/{object_id}/access/https")
    assert access.status_code == 200, access.text
    url = access.json()["url"].replace(PUBLIC_URL, server.url)
    headers = dict(line.split(": ", 1) for line in access.json()["headers"])
    return http.get(url, headers={**headers, "Range": "bytes=0-99"})


def test_bytes_substituted_before_the_first_open_are_refused_and_audited(
    s3: S3Server, tmp_path: Path, serve: Any
) -> None:
    bucket = s3.new_bucket()
    settings = load_settings(
        tmp_path / "node",
        public_url=PUBLIC_URL,
        environment="test",
        objects_url=f"s3://{bucket}/node",
        s3=s3.settings(),
    )
    node = init_node(settings)
    rows = {}
    for name, plaintext in (("plain", True), ("sealed", False)):
        DatasetService(node.database).create(
            NewDataset(name, name, "C", "public", ["NRES"], pseudonymise=False, store_plaintext=plaintext)
        )
        copies = [tmp_path / f"{name}-{source.name}" for source in (VCF, OTHER)]
        for source, copy in zip((VCF, OTHER), copies, strict=True):
            copy.write_bytes(source.read_bytes())
        for row in build_ingestor(node).ingest(name, copies).published:
            rows[row.id] = row
    public = load_keypair(settings.keys_dir).public
    node.close()

    bucket_client = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    substituted = {"plain.plain-spec-v4.3.vcf.gz", "sealed.sealed-spec-v4.3.vcf.gz"}
    for object_id in substituted:
        key = f"node/{rows[object_id].blob_key}"
        length = bucket_client.head_object(Bucket=bucket, Key=key)["ContentLength"]
        forged = tmp_path / f"{object_id}.forged"
        if rows[object_id].blob_key.endswith(".c4gh"):
            # Other plaintext of the file's length, encrypted to the node's public key: a valid Crypt4GH file.
            other = tmp_path / "other-plaintext"
            other.write_bytes(b"#" * rows[object_id].size)
            encrypt_file(other, forged, KeyPair(public=public, secret=b""))
        else:
            forged.write_bytes(b"#" * length)
        assert forged.stat().st_size == length, "the forgery must have the object's length"
        bucket_client.put_object(Bucket=bucket, Key=key, Body=forged.read_bytes())

    server: Server = serve(tmp_path / "node", s3.env(), public_url=PUBLIC_URL)
    with httpx.Client(timeout=30) as http:
        for object_id in substituted:
            answer = read(http, server, object_id)
            assert answer.status_code == 502, f"{object_id}: {answer.status_code} {answer.content[:100]!r}"
            assert b"#" not in answer.content
            assert "changed outside the node" in answer.text, answer.text
        for object_id in {"plain.plain-spec-v4.3.bcf", "sealed.sealed-spec-v4.3.bcf"}:
            untouched = read(http, server, object_id)
            assert untouched.status_code == 206, untouched.text
            assert untouched.content == OTHER.read_bytes()[:100]
    server.stop()

    audited = Node.open(settings)
    try:
        told = [entry for entry in audited.audit.entries() if entry.action == "objects.changed"]
    finally:
        audited.close()
    assert {entry.resource for entry in told} == {f"stored/{rows[o].blob_key}" for o in substituted}
    assert all(entry.decision == "deny" for entry in told)
