"""A dataset's deletion on SQLite holds nobody up while it deletes the stored bytes, and survives a crash.

``genoshare datasets delete`` stops serving a dataset in one transaction, then deletes its stored bytes, a
request per object on S3. It held the SQLite database's write turn through all of it (the keys were listed in
the transaction, the bytes deleted in another holding it), so every Beacon answer that writes its privacy
state and every audit entry of the node waited for the whole deletion. Attacked with the real CLI deleting a
dataset from a real S3 server that answers each DELETE slowly (a relay process in front of it): an audit
entry about another dataset is appended meanwhile, from this process, and must not wait. Then the deletion is
killed (SIGKILL) halfway: nothing of the dataset is served, every object still in the bucket is named by a
pending removal, and ``genoshare objects sweep`` deletes them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from slow_store import slow_store
from sqlalchemy import select

from genoshare.audit import Entry
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.errors import NotFound
from genoshare.node import Node, build_ingestor, init_node
from genoshare.settings import load_settings
from genoshare.store.models import PendingRemoval
from objects_s3 import ACCESS_KEY_ID, SECRET_ACCESS_KEY, S3Server

from processes import run_cli
from support import HTSGET_DATA

FILES = [HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz", HTSGET_DATA / "bcf" / "spec-v4.3.bcf"]
FILES += [HTSGET_DATA / "bcf" / "sample1-bcbio-cancer.bcf", HTSGET_DATA / "vcf" / "sample1-bcbio-cancer.vcf.gz"]
#: How long the slow store holds each DELETE.
DELETE_SECONDS = 0.4
#: An audit entry (one short write) that takes longer than this waited for someone else's turn.
PROMPT_SECONDS = 1.0


@dataclass
class Deleting:
    node: Node
    bucket: str
    env: dict[str, str]
    store: Any

    def stored(self) -> set[str]:
        """The keys in the node's bucket, asked of the S3 server itself (not through the slow relay)."""
        pages = self.store.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {entry["Key"] for page in pages for entry in page.get("Contents", [])}

    def start(self) -> subprocess.Popen[str]:
        command = ["datasets", "delete", "gone", "--yes", "--data-dir", str(self.node.settings.data_dir)]
        return subprocess.Popen(
            [sys.executable, "-m", "genoshare", *command],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    def served(self) -> bool:
        try:
            DatasetService(self.node.database).objects("gone")
        except NotFound:
            return False
        return True


@pytest.fixture
def deleting(s3: S3Server, tmp_path: Path) -> Iterator[Deleting]:
    """A node on SQLite whose bucket is behind a store slow to delete: dataset ``gone`` (four files), ``kept``."""
    bucket = s3.new_bucket()
    with slow_store(s3.endpoint, DELETE_SECONDS, ["DELETE"]) as endpoint:
        settings = s3.settings().model_copy(update={"endpoint_url": endpoint})
        node = init_node(load_settings(tmp_path / "node", objects_url=f"s3://{bucket}/node", s3=settings))
        for name in ("gone", "kept"):
            DatasetService(node.database).create(NewDataset(name, name, "C", "public", ["NRES"]))
        copies = [tmp_path / source.name for source in FILES]
        for source, copy in zip(FILES, copies, strict=True):
            copy.write_bytes(source.read_bytes())
        build_ingestor(node).ingest("gone", copies)
        store = boto3.client(
            "s3",
            endpoint_url=s3.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY_ID,
            aws_secret_access_key=SECRET_ACCESS_KEY,
        )
        yield Deleting(node, bucket, s3.env(), store)
        node.close()


def wait_for(check: Any, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_an_audit_entry_does_not_wait_for_a_deletion_of_stored_bytes(deleting: Deleting) -> None:
    before = deleting.stored()
    assert len(before) * DELETE_SECONDS > 4 * PROMPT_SECONDS, "too few objects to make the deletion long"
    child = deleting.start()
    wait_for(lambda: not deleting.served() or child.poll() is not None, "the dataset was never deleted")
    # Serving stopped (the first transaction committed); now the bytes go, one slow DELETE at a time.
    wait_for(lambda: len(deleting.stored()) < len(before) or child.poll() is not None, "no bytes deleted")
    began = time.monotonic()
    deleting.node.audit.record(Entry("operator:test", "test.note", "datasets/kept", "allow", "meanwhile"))
    took = time.monotonic() - began
    still_deleting = child.poll() is None
    said = child.communicate(timeout=300)[0]
    assert child.returncode == 0, said
    assert still_deleting, "the deletion ended before the audit entry was appended: the store was not slow"
    assert took < PROMPT_SECONDS, f"an audit entry waited {took:.1f} s for the deletion's stored bytes"
    assert not deleting.stored(), "stored bytes left after the deletion"
    report = deleting.node.audit.verify()
    assert report.ok, report.problem


def test_a_deletion_killed_halfway_leaves_its_pending_removals_and_the_sweep_ends_it(deleting: Deleting) -> None:
    before = deleting.stored()
    child = deleting.start()
    wait_for(lambda: len(deleting.stored()) < len(before) or child.poll() is not None, "no bytes deleted")
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    left = deleting.stored()
    assert left, "the deletion ended before it was killed: the store was not slow"
    assert not deleting.served(), "the killed deletion's dataset is served"
    with deleting.node.database.sessions() as session:
        pending = {f"node/{key}" for key in session.scalars(select(PendingRemoval.key))}
    assert left <= pending, f"stored bytes no pending removal names: {sorted(left - pending)}"
    swept = run_cli("objects", "sweep", "--data-dir", str(deleting.node.settings.data_dir), env=deleting.env)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert not deleting.stored(), "the sweep left stored bytes"
    with deleting.node.database.sessions() as session:
        assert not session.scalars(select(PendingRemoval)).all()
