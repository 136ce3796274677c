"""Both object stores keep the same promises: whole objects or none, ranged reads, keys that cannot escape.

The S3 store runs against a real S3 server process (``tests/objects_s3.py``); a crash in the middle of a
multipart upload is a real ``kill -9`` of the process uploading.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.errors import InvalidInput, NotFound
from genoshare.node import Node, build_ingestor
from genoshare.operations.backup import backup, restore
from genoshare.settings import load_settings
from genoshare.store.objects import ObjectStore, create_object_store
from objects_s3 import SECRET_ACCESS_KEY, S3Server

from support import HTSGET_DATA

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> ObjectStore:
    if request.param == "file":
        return create_object_store((tmp_path / "objects").as_uri())
    server: S3Server = request.getfixturevalue("s3")
    return create_object_store(f"s3://{server.new_bucket()}/node", server.settings(), tmp_path / "scratch")


def staged(store: ObjectStore, data: bytes) -> Path:
    path = store.staging_dir() / f"upload-{len(data)}"
    path.write_bytes(data)
    return path


def test_put_read_by_range_list_and_delete(store: ObjectStore) -> None:
    data = os.urandom(300_000)
    store.put(staged(store, data), "ab/abcdef.c4gh")
    assert store.exists("ab/abcdef.c4gh") and store.keys("ab/") == ["ab/abcdef.c4gh"]
    assert store.read_bytes("ab/abcdef.c4gh") == data
    assert store.local_copy("ab/abcdef.c4gh").read_bytes() == data
    opened = store.open("ab/abcdef.c4gh")
    assert opened.size == len(data)
    into = memoryview(bytearray(1000))
    assert opened.readinto(into, 123_456) == 1000 and bytes(into) == data[123_456:124_456]
    assert opened.readinto(into, len(data) - 10) == 10 and bytes(into[:10]) == data[-10:]
    opened.close()
    store.delete("ab/abcdef.c4gh")
    assert not store.exists("ab/abcdef.c4gh") and store.keys("ab/") == []
    with pytest.raises(NotFound):
        store.open("ab/abcdef.c4gh")


@pytest.mark.parametrize("key", ["../outside", "ab/../../outside", "/etc/passwd", ""])
def test_keys_cannot_escape_the_store(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidInput):
        store.open(key)


def test_a_crash_during_a_multipart_upload_publishes_nothing(s3: S3Server, tmp_path: Path) -> None:
    """A process killed while its parts go up leaves no object: S3 publishes only a completed upload."""
    import boto3

    bucket = s3.new_bucket()
    store = create_object_store(f"s3://{bucket}/node", s3.settings(), tmp_path / "scratch")
    source = store.staging_dir() / "big"
    with source.open("wb") as out:  # above the 64 MiB part size: a multipart upload
        for _ in range(130):
            out.write(os.urandom(1 << 20))
    script = (
        "import os, sys, pathlib, pydantic\n"
        "from genoshare.settings import S3Settings\n"
        "from genoshare.store.objects import create_object_store\n"
        "secret = pydantic.SecretStr(os.environ['TEST_S3_SECRET'])\n"
        "settings = S3Settings.model_validate_json(sys.argv[3]).model_copy(update={'secret_access_key': secret})\n"
        "store = create_object_store(sys.argv[1], settings, pathlib.Path(sys.argv[2]))\n"
        "store.put(pathlib.Path(sys.argv[2]) / '.staging' / 'big', 'cd/cdef.c4gh')\n"
    )
    settings = s3.settings().model_dump_json(exclude={"secret_access_key"})
    env = {**os.environ, "TEST_S3_SECRET": SECRET_ACCESS_KEY}
    uploader = subprocess.Popen(
        [sys.executable, "-c", script, f"s3://{bucket}/node", str(tmp_path / "scratch"), settings], env=env
    )
    client = boto3.client(
        "s3", endpoint_url=s3.endpoint, region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    deadline = time.monotonic() + 60
    while not client.list_multipart_uploads(Bucket=bucket).get("Uploads"):
        assert uploader.poll() is None, "the upload ended before it could be interrupted"
        assert time.monotonic() < deadline, "no multipart upload started"
        time.sleep(0.05)
    os.kill(uploader.pid, signal.SIGKILL)
    uploader.wait()
    assert not store.exists("cd/cdef.c4gh")
    assert store.keys("cd/") == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("object_store", ["s3"], indirect=True)
def test_a_backup_of_an_s3_node_keeps_objects_in_the_bucket_and_no_plaintext(
    node: Node, s3: S3Server, tmp_path: Path
) -> None:
    DatasetService(node.database).create(
        NewDataset(id="open", title="Open", custodian="C", access_level="public", duo_codes=["NRES"])
    )
    (row,) = build_ingestor(node).ingest("open", [VCF]).published
    (node.objects.staging_dir() / "left-by-a-crash").write_bytes(b"PLAINTEXT")
    archive = tmp_path / "node.backup"
    manifest = backup(node, archive)
    assert manifest["objects_url"] == node.settings.objects_url
    with tarfile.open(archive) as opened:
        names = opened.getnames()
    assert not [name for name in names if name.startswith("objects/") or "scratch" in name or "staging" in name]

    restore(archive, tmp_path / "restored")
    settings = load_settings(tmp_path / "restored", s3=s3.settings())
    assert settings.objects_url == node.settings.objects_url
    restored = Node.open(settings)
    try:
        assert restored.objects.read_bytes(row.blob_key) == node.objects.read_bytes(row.blob_key)
    finally:
        restored.close()


def test_streamed_pieces_and_jumps_read_the_right_bytes(store: ObjectStore) -> None:
    """Large reads fetch the next piece ahead on S3: a stream, a jump back and a jump ahead all get their bytes."""
    data = os.urandom(3 * (1 << 20) + 12_345)
    store.put(staged(store, data), "ef/streamed")
    opened = store.open("ef/streamed")
    piece = memoryview(bytearray(1 << 20))
    for offset in (0, 1 << 20, 2 << 20, 3 << 20, 1000, 2 << 20, 512):
        got = opened.readinto(piece, offset)
        assert bytes(piece[:got]) == data[offset : offset + (1 << 20)]
    opened.close()
