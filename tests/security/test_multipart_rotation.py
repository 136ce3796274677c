"""A node-key rotation's multipart rewrite (S3) is conditional too: a file deleted meanwhile stays deleted.

A rotation rewrites each Crypt4GH file in place; one PUT carries ``If-Match`` (the object it read), so a
deletion meanwhile wins. Above what one PUT takes (5 GiB) the rewrite was a multipart upload with no condition:
a file deleted while its parts went up was stored again, bytes the operator was told were gone. Here the
limit is lowered on the node's store (``single_put_limit``), the store is a real S3 server process reached
through a relay that holds each part's upload, and the file is deleted (as ``objects remove`` deletes it)
while its parts go up. A rotation whose file is not deleted still rewrites it in parts, and the node reads it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import boto3
import pytest
from slow_store import slow_store
from test_rotation_after_deletion import stored_file

from genoshare.crypt.files import EncryptedFile
from genoshare.crypt.keys import load_keypair
from genoshare.node import Node
from genoshare.operations.rotation import rotate_node_key
from genoshare.store.ledger import Ledger
from genoshare.store.objects import create_object_store
from genoshare.store.s3 import S3ObjectStore
from objects_s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server

#: Files above this are rewritten in parts here (S3's limit is 5 GiB).
LOWERED = 1024 * 1024
#: How long the relay holds each part's upload: the window the deletion falls in.
PART_SECONDS = 2.0

pytestmark = [
    pytest.mark.parametrize("database_url", ["sqlite"], indirect=True),
    pytest.mark.parametrize("object_store", ["s3"], indirect=True),
]


def store_through(node: Node, endpoint: str) -> S3ObjectStore:
    """The node's bucket, reached through ``endpoint``, rewriting files above ``LOWERED`` in parts."""
    bucket = node.settings.objects_url.removeprefix("s3://").split("/")[0]
    settings = node.settings.s3.model_copy(update={"endpoint_url": endpoint})
    store = create_object_store(
        f"s3://{bucket}/node", settings, node.settings.data_dir / "scratch", Ledger(node.database)
    )
    assert isinstance(store, S3ObjectStore)
    store.single_put_limit = LOWERED
    return store


def test_a_file_deleted_while_its_parts_go_up_is_not_stored_again(node: Node, s3: S3Server, tmp_path: Path) -> None:
    key = stored_file(node, tmp_path)
    bucket = node.settings.objects_url.removeprefix("s3://").split("/")[0]
    direct = boto3.client(
        "s3",
        endpoint_url=s3.endpoint,
        region_name="us-east-1",
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
    )
    with slow_store(s3.endpoint, PART_SECONDS, ["PUT"]) as endpoint:
        store = store_through(node, endpoint)
        failed: list[BaseException] = []

        def rotate() -> None:
            try:
                rotate_node_key(node.settings.keys_dir, store, pause=0.0)
            except BaseException as error:
                failed.append(error)

        rotation = threading.Thread(target=rotate)
        rotation.start()
        deadline = time.monotonic() + 60
        while not direct.list_multipart_uploads(Bucket=bucket).get("Uploads"):
            assert rotation.is_alive(), f"the rotation ended without a multipart upload: {failed}"
            assert time.monotonic() < deadline, "no multipart upload started"
            time.sleep(0.02)
        node.objects.delete(key)  # while its part goes up
        rotation.join(timeout=120)
    assert not failed, failed
    assert not node.objects.exists(key), "the rotation's multipart upload stored a deleted file again"
    assert not direct.list_multipart_uploads(Bucket=bucket).get("Uploads"), "an upload was left incomplete"


def test_a_rotation_rewrites_a_large_file_in_parts_and_the_node_reads_it(node: Node, tmp_path: Path) -> None:
    key = stored_file(node, tmp_path)
    store = store_through(node, node.settings.s3.endpoint_url or "")
    rotate_node_key(node.settings.keys_dir, store, pause=0.0)
    etag = store.client.head_object(Bucket=store.bucket, Key=f"node/{key}")["ETag"]
    assert etag.strip('"').endswith("-1"), f"{etag}: not a multipart upload's ETag"
    new = load_keypair(node.settings.keys_dir)
    reopened = store_through(node, node.settings.s3.endpoint_url or "")  # nothing remembered: checks the record
    with EncryptedFile(reopened.open(key), new.secret) as rekeyed:
        assert rekeyed.read_plaintext(0, 4096) == (tmp_path / "reads.bin").read_bytes()[:4096]
