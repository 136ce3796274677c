"""A file deleted while ``genoshare rotate node-key`` rewrites its header stays deleted.

A rotation re-keys every stored Crypt4GH file in turn: it reads the file, writes a copy with a new header, and
puts the copy in the file's place, a few seconds on a large file. Deleting the file meanwhile (``genoshare
objects remove``, ``datasets delete``, or a re-derivation after a participant withdrew, which deletes the old
file holding them) must win: the rotation must not store the copy under the deleted key, bringing back at rest
the bytes the operator (or a withdrawal) was told were gone. Attacked with the rotation as its own CLI process,
on a file store and on S3; the deletion goes through the node's object store as ``objects remove`` does.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from genoshare.crypt.files import encrypt_file
from genoshare.crypt.keys import load_keypair
from genoshare.node import Node

#: Large enough that the rotation's copy takes a while (the window the deletion falls in).
SIZE = 16 * 1024 * 1024


def copied(node: Node, size: int) -> bool:
    """Whether the rotation's copy of the file (with its new header) has at least ``size`` bytes."""
    for copy in node.objects.staging_dir().glob("rotate-*/rekeyed.c4gh"):
        try:
            if copy.stat().st_size >= size:
                return True
        except FileNotFoundError:  # moved into place meanwhile
            continue
    return False


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the race is the object store's
@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_a_file_deleted_during_a_rotation_is_not_stored_again(
    node: Node, object_store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    plain = tmp_path / "reads.bin"
    plain.write_bytes(os.urandom(SIZE))
    sealed = node.objects.staging_dir() / "reads.c4gh"
    encrypt_file(plain, sealed, load_keypair(node.settings.keys_dir, "node"))
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    key = f"blobs/{digest[:2]}/{digest}.c4gh"
    node.objects.put(sealed, key)
    env = {**os.environ, "GENOSHARE_DATABASE_URL": node.settings.database_url}
    if object_store == "s3":
        env.update(request.getfixturevalue("s3").env())

    rotation = subprocess.Popen(
        [sys.executable, "-m", "genoshare", "rotate", "node-key", "--data-dir", str(node.settings.data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # A file store's rotation reads the file it opened to its end, whoever deletes it: delete it as the copy
    # begins. An S3 store's reads would fail on a deleted object: delete it once the copy is whole.
    size = node.objects.open(key).size if object_store == "s3" else 0
    try:
        deadline = time.monotonic() + 60
        while not copied(node, size):
            assert rotation.poll() is None, rotation.communicate()[0]
            assert time.monotonic() < deadline, "the rotation never copied the file"
            time.sleep(0.002)
        node.objects.delete(key)
        output, _ = rotation.communicate(timeout=120)
    finally:
        if rotation.poll() is None:
            rotation.kill()
            rotation.wait()
    assert rotation.returncode == 0, output
    assert not node.objects.exists(key), "the rotation stored a deleted file again"
