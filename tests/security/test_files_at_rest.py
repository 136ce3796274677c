"""Controlled data at rest: nothing readable by other users of the machine, nothing left after a crash or a
withdrawal (issue 12).

The attacker is another local user: any file of the node that is group- or world-readable (the Beacon
carrier bitmaps are the genotype matrix, the database holds the original sample names) is theirs. The
other attack is time: a re-derivation killed with ``kill -9`` left a decrypted copy that still held the
withdrawn person, and a withdrawal left the old encrypted blob and its index on disk for good.
"""

from __future__ import annotations

import gzip
import os
import signal
import stat
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_consent, build_ingestor
from genoshare.store.blobs import copy_plaintext
from genoshare.store.models import DataObject

from processes import Server, run_cli
from support import HTSGET_DATA

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """What a shell usually has (022): the node must not rely on the operator's umask."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def readable_by_others(root: Path) -> list[str]:
    found = []
    for path in [root, *root.rglob("*")]:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode) or path.suffix == ".pub":  # a public key is public by design
            continue
        if mode & 0o077:
            found.append(f"{path.relative_to(root.parent)} {stat.filemode(mode)}")
    return found


@pytest.mark.usefixtures("loose_umask")
def test_no_file_of_a_served_node_is_readable_by_other_users(tmp_path: Path, serve: type[Server]) -> None:
    node = tmp_path / "node"
    env = {"GENOSHARE_DATABASE_URL": ""}
    for command in (
        ["init"],
        ["datasets", "create", "family", "--title", "T", "--custodian", "C", "--duo", "GRU"],
        ["ingest", "family", str(VCF)],
    ):
        result = run_cli(*command, "--data-dir", str(node), env=env)
        assert result.returncode == 0, result.stderr
    server = serve(node, env)
    answer = httpx.get(f"{server.url}/api/g_variants", params={"referenceName": "20", "start": 14369}, timeout=30)
    assert answer.status_code == 200
    server.stop()
    assert (node / "genoshare.db-wal").exists() or (node / "genoshare.db").exists()
    assert list(node.rglob("*.arrow")), "the Beacon carrier bitmaps should be on disk"
    assert readable_by_others(node) == []

    # A node made by an older genoshare: the next command closes it again.
    node.chmod(0o755)
    (node / "genoshare.db").chmod(0o644)
    assert run_cli("datasets", "list", "--data-dir", str(node), env=env).returncode == 0
    assert stat.S_IMODE(node.stat().st_mode) == 0o700
    assert stat.S_IMODE((node / "genoshare.db").stat().st_mode) == 0o600


def big_family(path: Path, samples: int = 60, records: int = 60_000) -> Path:
    """A multi-sample VCF big enough that re-deriving it takes a noticeable moment."""
    names = [f"P{number:03d}" for number in range(samples)]
    header = [
        "##fileformat=VCFv4.2",
        "##contig=<ID=20,length=64444167>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *names]),
    ]
    calls = "\t".join(("0|1", "1|0", "0|0", "1|1")[number % 4] for number in range(samples))
    with path.open("w") as out:
        out.write("\n".join(header) + "\n")
        out.writelines(f"20\t{1000 + 10 * i}\t.\tA\tG\t50\tPASS\t.\tGT\t{calls}\n" for i in range(records))
    return path


def holds(path: Path, name: str) -> bool:
    """Whether a file holds ``name`` in plaintext, raw or inside its first gzip/BGZF members."""
    data = path.read_bytes()
    if name.encode() in data:
        return True
    text = b""
    while data[:2] == b"\x1f\x8b":
        inflater = zlib.decompressobj(31)
        try:
            text += inflater.decompress(data)
        except zlib.error:
            break
        data = inflater.unused_data
    return name.encode() in text


def test_a_killed_rederivation_leaves_no_copy_of_the_withdrawn_person(node: Node, tmp_path: Path) -> None:
    DatasetService(node.database).create(
        NewDataset(id="family", title="T", custodian="C", access_level="controlled", duo_codes=["GRU"])
    )
    shared = build_ingestor(node).ingest("family", [big_family(tmp_path / "family.vcf")]).published[0]
    gone = build_consent(node).records("family")[0].participant
    data_dir = str(node.settings.data_dir)
    staging = node.objects.staging_dir()

    withdrawing = subprocess.Popen(
        [sys.executable, "-m", "genoshare", "consent", "withdraw", "family", gone, "--data-dir", data_dir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while withdrawing.poll() is None and time.monotonic() < deadline:
        if any(path.stat().st_size > 0 for path in staging.glob("rederive-*/source*")):
            os.kill(withdrawing.pid, signal.SIGKILL)
            break
        time.sleep(0.005)
    assert withdrawing.wait(timeout=60) == -signal.SIGKILL, "the re-derivation ended before the kill"
    leftovers = [path for path in staging.rglob("*") if path.is_file()]
    assert any(holds(path, gone) for path in leftovers), "the kill should have left the decrypted copy"

    result = run_cli("consent", "rederive", "--data-dir", data_dir)
    assert result.returncode == 0, result.stderr
    assert f"re-derived: {shared.id}" in result.stdout
    assert list(staging.iterdir()) == []
    objects = staging.parent
    assert [path for path in objects.rglob("*") if path.is_file() and holds(path, gone)] == []
    # The withdrawn person's old copy, encrypted or not, is gone with its index.
    assert not node.objects.exists(shared.blob_key)
    assert not node.objects.exists(shared.index_key or "")
    with node.database.sessions() as session:
        row = session.get(DataObject, shared.id)
    assert row is not None and row.status == "available" and node.objects.exists(row.blob_key)


def test_after_a_withdrawal_the_old_blob_and_index_are_deleted(node: Node, tmp_path: Path) -> None:
    DatasetService(node.database).create(
        NewDataset(id="family", title="T", custodian="C", access_level="controlled", duo_codes=["GRU"])
    )
    shared = build_ingestor(node).ingest("family", [VCF]).published[0]
    old_blob = node.objects.local_path(shared.blob_key)
    beacon = node.settings.data_dir / "beacon" / "family"
    assert (beacon / shared.sha256).is_dir(), "ingest builds the Beacon carrier bitmaps"
    gone = build_consent(node).records("family")[0].participant
    result = run_cli("consent", "withdraw", "family", gone, "--data-dir", str(node.settings.data_dir))
    assert result.returncode == 0, result.stderr
    assert not old_blob.exists()
    assert not node.objects.exists(shared.index_key or "")
    with node.database.sessions() as session:
        row = session.get(DataObject, shared.id)
    assert row is not None and row.blob_key != shared.blob_key
    # The carrier bitmaps of the old file held theirs too: rebuilt from the new file, the old ones deleted.
    assert [path.name for path in beacon.iterdir()] == [row.sha256]
    plain = tmp_path / "now.vcf.gz"
    copy_plaintext(node.objects, node.keys.secret, row, plain)
    with gzip.open(plain, "rt") as text:
        assert gone not in text.read()
