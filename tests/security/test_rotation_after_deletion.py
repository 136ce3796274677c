"""A file deleted while ``genoshare rotate node-key`` rewrites its header stays deleted, and the rotation finishes.

A rotation re-keys every stored Crypt4GH file in turn: it reads the file, writes a copy with a new header, and
puts the copy in the file's place, seconds on a large file. Deleting the file meanwhile (``genoshare objects
remove``, ``datasets delete``, or a re-derivation after a participant withdrew, which deletes the old file
holding them) must win: the rotation must not store the copy under the deleted key, bringing back at rest the
bytes the operator (or a withdrawal) was told were gone; nor may it stop half-way over a file that is no longer
there. Attacked with the rotation as its own CLI process, on a file store and on S3; each deletion goes
through the node's object store as ``objects remove`` does: one file as its copy begins, one once it is whole.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from genoshare.crypt.files import encrypt_file
from genoshare.crypt.keys import load_keypair
from genoshare.node import Node

#: Large enough that the rotation's copy takes a while (the window a deletion falls in).
SIZE = 16 * 1024 * 1024


def stored_file(node: Node, scratch: Path) -> str:
    """A Crypt4GH file of SIZE random bytes stored as ingest stores one; its key."""
    plain = scratch / "reads.bin"
    plain.write_bytes(os.urandom(SIZE))
    sealed = node.objects.staging_dir() / "reads.c4gh"
    encrypt_file(plain, sealed, load_keypair(node.settings.keys_dir, "node"))
    digest = hashlib.sha256(plain.read_bytes()).hexdigest()
    key = f"blobs/{digest[:2]}/{digest}.c4gh"
    node.objects.put(sealed, key)
    return key


def a_copy(node: Node, seen: set[str], size: int) -> bool:
    """Whether the rotation is copying a file not in ``seen`` (work directories) and has ``size`` bytes of it."""
    for copy in node.objects.staging_dir().glob("rotate-*/rekeyed.c4gh"):
        try:
            if copy.parent.name not in seen and copy.stat().st_size >= size:
                seen.add(copy.parent.name)
                return True
        except FileNotFoundError:  # moved into place meanwhile
            continue
    return False


def waiting(rotation: subprocess.Popen[str], until: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not until():
        assert rotation.poll() is None, rotation.communicate()[0]
        assert time.monotonic() < deadline, "the rotation never copied the file"
        time.sleep(0.002)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the race is the object store's
@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_files_deleted_during_a_rotation_are_not_stored_again(
    node: Node, object_store: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    first, second = sorted(stored_file(node, tmp_path) for _ in range(2))  # the order the rotation takes them
    env = {**os.environ, "GENOSHARE_DATABASE_URL": node.settings.database_url}
    if object_store == "s3":
        env.update(request.getfixturevalue("s3").env())
    whole = node.objects.open(second).size
    seen: set[str] = set()

    rotation = subprocess.Popen(
        [sys.executable, "-m", "genoshare", "rotate", "node-key", "--data-dir", str(node.settings.data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        waiting(rotation, lambda: a_copy(node, seen, 1))
        node.objects.delete(first)  # as its copy begins (on S3, the rotation's next read finds it gone)
        waiting(rotation, lambda: a_copy(node, seen, whole))
        node.objects.delete(second)  # once its copy is whole, before the copy is put in its place
        output, _ = rotation.communicate(timeout=120)
    finally:
        if rotation.poll() is None:
            rotation.kill()
            rotation.wait()
    assert rotation.returncode == 0, output
    assert not node.objects.exists(first), "the rotation stored a file deleted as it began its copy"
    assert not node.objects.exists(second), "the rotation stored a file deleted before its copy was put"
