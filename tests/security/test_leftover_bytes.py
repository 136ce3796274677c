"""Bytes a removal could not delete are not forgotten: `genoshare check` names them, `objects sweep` deletes them.

`genoshare objects remove` / `datasets delete` stop serving first (one transaction), then delete the stored
bytes. When the store fails at that second step, the bytes of a file the operator was told is gone stay at
rest. Attacked with real failures: a read-only directory on the file store (the CLI run without the root
capabilities that would ignore it), and on S3 the store's process frozen (SIGSTOP) mid-removal. The check
must report the leftovers, the sweep must delete them once the store works (audited), and must not delete
bytes that a later ingest of the same file uses again (keys are content checksums).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from genoshare.crypt.files import EncryptedFile
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor, build_lifecycle, init_node
from genoshare.settings import load_settings
from genoshare.store.models import DataObject
from objects_s3 import s3_server

from processes import run_cli
from support import HTSGET_DATA

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
LEFT = "stored file(s) of removed files or datasets are still there"


def open_node(tmp_path: Path, **options: object) -> tuple[Node, dict[str, str], DataObject]:
    env = {"GENOSHARE_DATABASE_URL": f"sqlite:///{tmp_path / 'node.db'}"}
    node = init_node(load_settings(tmp_path / "node", database_url=env["GENOSHARE_DATABASE_URL"], **options))
    DatasetService(node.database).create(
        NewDataset(id="open", title="Open", custodian="C", access_level="public", duo_codes=["NRES"])
    )
    return node, env, build_ingestor(node).ingest("open", [VCF]).published[0]


def cli(node: Node, env: dict[str, str], *args: str, wrapper: tuple[str, ...] = ()) -> tuple[int, str]:
    done = run_cli(*args, "--data-dir", str(node.settings.data_dir), env=env, wrapper=wrapper)
    return done.returncode, done.stdout + done.stderr


def unprivileged() -> tuple[str, ...]:
    """As root, the process loses the capabilities that let it write into a read-only directory."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux): a read-only directory cannot stop root")
    return (setpriv, "--bounding-set=-dac_override,-dac_read_search,-fowner", "--")


@contextmanager
def read_only(*directories: Path) -> Iterator[None]:
    for directory in directories:
        directory.chmod(0o500)
    try:
        yield
    finally:
        for directory in directories:
            directory.chmod(0o700)


def blob_path(node: Node, key: str) -> Path:
    return node.settings.data_dir / "objects" / key


def test_bytes_a_read_only_store_kept_are_reported_and_swept(tmp_path: Path) -> None:
    node, env, row = open_node(tmp_path)
    blob, index = blob_path(node, row.blob_key), blob_path(node, row.index_key or "")
    assert blob.is_file() and index.is_file()
    with read_only(blob.parent, index.parent):
        code, said = cli(node, env, "objects", "remove", row.id, "--yes", wrapper=unprivileged())
    assert code == 1 and "could not be deleted" in said and "genoshare objects sweep" in said, said
    assert blob.is_file(), "the store was read-only: the bytes are still there"
    assert not DatasetService(node.database).objects("open"), "yet nothing serves them"

    code, said = cli(node, env, "check")
    assert code == 0 and LEFT in said and "genoshare objects sweep" in said, said
    code, said = cli(node, env, "objects", "sweep")
    assert code == 0 and "deleted 2 stored file(s)" in said, said
    assert not blob.exists() and not index.exists()
    code, said = cli(node, env, "check")
    assert code == 0 and LEFT not in said, said
    (swept,) = [e for e in node.audit.entries() if e.action == "objects.sweep"]
    assert swept.actor.startswith("operator:") and set(swept.details["done"]) == {row.blob_key, row.index_key}
    assert node.audit.verify().ok
    node.close()


def test_a_sweep_keeps_the_bytes_of_the_same_file_ingested_again(tmp_path: Path) -> None:
    node, env, row = open_node(tmp_path)
    blob = blob_path(node, row.blob_key)
    with read_only(blob.parent):
        code, said = cli(node, env, "objects", "remove", row.id, "--yes", wrapper=unprivileged())
    assert code == 1 and blob.is_file(), said
    again = build_ingestor(node).ingest("open", [VCF]).published[0]
    assert again.blob_key == row.blob_key  # the same bytes, the same key: the leftover is the new file's
    swept = build_lifecycle(node).sweep("operator:test")
    assert swept.kept == [row.blob_key] and swept.done == swept.left == [], swept
    assert blob.is_file()
    with EncryptedFile(node.objects.open(again.blob_key), node.keys) as stored:
        assert hashlib.sha256(b"".join(stored.iter_plaintext())).hexdigest() == again.sha256
    assert build_lifecycle(node).pending() == []
    node.close()


def test_bytes_an_s3_store_frozen_mid_removal_kept_are_swept_when_it_is_back(tmp_path: Path) -> None:
    with s3_server(tmp_path / "moto.log") as store:
        s3 = store.settings().model_copy(update={"connect_timeout_seconds": 1.0, "read_timeout_seconds": 1.0})
        node, env, row = open_node(tmp_path, objects_url=f"s3://{store.new_bucket()}/node", s3=s3)
        env |= store.env()
        delete = node.objects.delete

        def frozen(key: str) -> None:
            """The store's process stops answering just before the first deletion reaches it."""
            os.kill(store.process.pid, signal.SIGSTOP)
            delete(key)

        node.objects.delete = frozen  # type: ignore[method-assign]
        try:
            removal = build_lifecycle(node).remove_object(row.id, "operator:test")
        finally:
            os.kill(store.process.pid, signal.SIGCONT)
        node.objects.delete = delete  # type: ignore[method-assign]
        # Every deletion timed out. (The frozen store still holds the requests in its socket buffers and may
        # carry them out once it runs again: whether the bytes are there now is the store's business; that
        # the node still counts them as to be deleted is the point.)
        assert sorted(removal.left) == sorted(removal.stored), removal
        code, said = cli(node, env, "check")
        assert f"{len(removal.left)} {LEFT}" in said, said
        code, said = cli(node, env, "objects", "sweep")
        assert code == 0, said
        assert not node.objects.exists(row.blob_key) and not node.objects.exists(row.index_key or "")
        assert build_lifecycle(node).pending() == []
        node.close()
