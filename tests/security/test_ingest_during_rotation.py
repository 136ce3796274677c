"""`genoshare ingest` and `genoshare rotate node-key` in two processes at once: no file left for a deleted key.

An ingest encrypts each file to the node key as it stages it and stores the batch at the end. A rotation
that re-keyed the store and deleted the old secret key while such an ingest was still staging let it store
files whose headers only the deleted key opened: published, listed, and unreadable for good. The ingest is
stopped (SIGSTOP) just after it encrypted its first file to the old key, the rotation runs to the point
where it would delete that key, then the ingest goes on; at the end every stored file must open with the
node key in force, and give the bytes the ingest checksummed.
"""

from __future__ import annotations

import hashlib
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from big_files import long_read_bam

from genoshare.crypt.files import EncryptedFile
from genoshare.crypt.keys import load_keypair
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import init_node
from genoshare.settings import load_settings

from support import HTSGET_DATA

pytestmark = pytest.mark.slow

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"


def genoshare(*args: str, data_dir: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "genoshare", *args, "--data-dir", str(data_dir)],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_rotation_never_retires_the_key_an_unfinished_ingest_encrypted_to(tmp_path: Path) -> None:
    env = {"GENOSHARE_DATABASE_URL": f"sqlite:///{tmp_path / 'node.db'}"}
    node = init_node(load_settings(tmp_path / "node", database_url=env["GENOSHARE_DATABASE_URL"]))
    DatasetService(node.database).create(
        NewDataset(id="open", title="Open", custodian="Example", access_level="public", duo_codes=["NRES"])
    )
    big = long_read_bam(tmp_path / "big.bam", "S1", 8)
    staging, keys_dir = node.objects.staging_dir(), node.settings.keys_dir
    ingest = genoshare("ingest", "open", str(VCF), str(big), data_dir=node.settings.data_dir, env=env)
    try:
        deadline = time.monotonic() + 120
        while not any(staging.rglob("*.c4gh")):  # the VCF is encrypted to the key of the moment
            assert ingest.poll() is None and time.monotonic() < deadline, "the ingest ended before it was caught"
            time.sleep(0.005)
        os.kill(ingest.pid, signal.SIGSTOP)
        assert not DatasetService(node.database).objects("open"), "caught too late: the batch is published"
        rotation = genoshare("rotate", "node-key", data_dir=node.settings.data_dir, env=env)
        assert rotation.stdout is not None
        # Its first line: that it waits for the ingest, or (had it not waited) that it is done.
        ready, _, _ = select.select([rotation.stdout], [], [], 120)
        first = rotation.stdout.readline() if ready else ""
    finally:
        os.kill(ingest.pid, signal.SIGCONT)
    ingested = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, ingested
    rotated = rotation.communicate(timeout=120)
    assert rotation.returncode == 0, rotated
    assert "waiting for a process (an ingest?)" in first, first
    assert "node key rotated" in rotated[0]
    assert not (keys_dir / "node.previous.sec").exists() and not (keys_dir / "node.next.sec").exists()

    current = load_keypair(keys_dir, "node").secret
    published = DatasetService(node.database).objects("open")
    assert sorted(row.name for row in published) == ["big.bam", "spec-v4.3.vcf.gz"]
    for row in published:
        with EncryptedFile(node.objects.open(row.blob_key), current) as stored:
            plain = hashlib.sha256(b"".join(stored.iter_plaintext())).hexdigest()
        assert plain == row.sha256, row.name
    node.close()
