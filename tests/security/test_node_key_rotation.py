"""Rotating the node's Crypt4GH key under a running `genoshare serve`, on a file store and on S3.

Issue 18 (must-have 5): `genoshare rotate node-key` gives every stored Crypt4GH file a header for a new key and
touches no data segment; a download running across the rotation ends with the right bytes, downloads during
and after it give the same plaintext (checked with pysam and the crypt4gh package, as a user would), and once
the old key is retired, a copy of it stolen before the rotation opens no stored header. A rotation stopped
half-way leaves a node that serves every file, and running the command again finishes it.
"""

from __future__ import annotations

import base64
import hashlib
import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import crypt4gh.lib
import httpx
import pysam
import pytest
from big_files import long_read_bam
from crypt4gh.keys import get_private_key

from genoshare.crypt.errors import NotDecryptable
from genoshare.crypt.files import EncryptedFile, encrypt_file
from genoshare.crypt.keys import load_keypair
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor, init_node
from genoshare.operations.rotation import ENCRYPTED_PREFIXES, rotate_node_key
from genoshare.settings import load_settings
from genoshare.store.objects import ObjectStore
from objects_s3 import S3Server

from processes import Server, run_cli
from support import HTSGET_DATA

pytestmark = pytest.mark.slow

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
BAM = HTSGET_DATA / "bam" / "htsnexus_test_NA12878.bam"
USER_KEYS = HTSGET_DATA / "c4gh" / "keys"
DRS = "/ga4gh/drs/v1"


@pytest.fixture(params=["file", "s3"])
def rotating_node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Node, dict[str, str]]]:
    """A node on SQLite with a public dataset: a 12 MiB BAM (a long download), a VCF, and a request document."""
    with node_with_files(request, tmp_path, long_read_bam(tmp_path / "big.bam", "S1", 12)) as made:
        yield made


@pytest.fixture
def small_node(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Node, dict[str, str]]]:
    """The same on a file store, with a small BAM."""
    with node_with_files(request, tmp_path, BAM) as made:
        yield made


@contextmanager
def node_with_files(request: pytest.FixtureRequest, tmp_path: Path, bam: Path) -> Iterator[tuple[Node, dict[str, str]]]:
    options: dict[str, Any] = {}
    env = {"GENOSHARE_DATABASE_URL": f"sqlite:///{tmp_path / 'node.db'}"}
    if getattr(request, "param", "file") == "s3":
        store: S3Server = request.getfixturevalue("s3")
        options = {"objects_url": f"s3://{store.new_bucket()}/node", "s3": store.settings()}
        env |= store.env()
    settings = load_settings(tmp_path / "node", database_url=env["GENOSHARE_DATABASE_URL"], **options)
    node = init_node(settings)
    DatasetService(node.database).create(
        NewDataset(id="open", title="Open", custodian="Example", access_level="public", duo_codes=["NRES"])
    )
    build_ingestor(node).ingest("open", [bam, VCF])
    # A request document, stored as RequestDocuments stores one: Crypt4GH under documents/.
    with node.objects.work_dir("test") as work:
        (work / "plain").write_bytes(b"ethics approval, signed")
        encrypt_file(work / "plain", work / "sealed.c4gh", node.keys)
        node.objects.put(work / "sealed.c4gh", "documents/request-1/document-1.c4gh")
    yield node, env
    node.close()


def stored(objects: ObjectStore) -> dict[str, bytes]:
    """Every Crypt4GH object's stored bytes."""
    keys = [key for prefix in ENCRYPTED_PREFIXES for key in objects.keys(prefix) if key.endswith(".c4gh")]
    return {key: objects.read_bytes(key) for key in keys}


def access(client: httpx.Client, object_id: str) -> tuple[str, dict[str, str]]:
    answer = client.get(f"{DRS}/objects/{object_id}/access/https").json()
    return answer["url"], dict(line.split(": ", 1) for line in answer.get("headers", []))


def htsget_c4gh(client: httpx.Client, htsget_id: str) -> bytes:
    """The VCF as a user gets it encrypted to their own key, decrypted by the crypt4gh package."""
    public = base64.b64encode((USER_KEYS / "bob.pub").read_bytes()).decode()
    ticket = client.get(
        f"/htsget/variants/{htsget_id}",
        params={"encryptionScheme": "C4GH"},
        headers={"Htsget-Context-Public-Key": public},
    )
    assert ticket.status_code == 200, ticket.text
    data = b""
    for entry in ticket.json()["htsget"]["urls"]:
        if entry["url"].startswith("data:"):
            data += base64.b64decode(entry["url"].split(",", 1)[1])
            continue
        piece = client.get(entry["url"], headers=entry.get("headers", {}))
        assert piece.status_code in (200, 206), piece.text
        data += piece.content
    out = io.BytesIO()
    crypt4gh.lib.decrypt([(0, get_private_key(str(USER_KEYS / "bob.sec"), lambda: ""), None)], io.BytesIO(data), out)
    return out.getvalue()


def reads_in(bam: bytes, tmp_path: Path) -> int:
    path = tmp_path / f"{hashlib.sha256(bam).hexdigest()[:8]}.bam"
    path.write_bytes(bam)
    with pysam.AlignmentFile(str(path), "rb") as reads:
        return sum(1 for _ in reads.fetch(until_eof=True))


def test_rotating_the_node_key_under_running_downloads(
    rotating_node: tuple[Node, dict[str, str]], serve: type[Server], tmp_path: Path
) -> None:
    node, env = rotating_node
    keys_dir = node.settings.keys_dir
    old = load_keypair(keys_dir, "node")  # what a thief who copied keys/ before the rotation holds
    before = stored(node.objects)
    assert len(before) == 3
    server = serve(node.settings.data_dir, env)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        bam_id, vcf_id = (obj["id"] for obj in client.get(f"{DRS}/objects/open").json()["contents"])
        if bam_id.endswith("vcf.gz"):
            bam_id, vcf_id = vcf_id, bam_id
        bam_url, bam_headers = access(client, bam_id)
        vcf_url, vcf_headers = access(client, vcf_id)
        bam_plain = client.get(bam_url, headers=bam_headers).content
        vcf_plain = client.get(vcf_url, headers=vcf_headers).content
        vcf_for_user = htsget_c4gh(client, "spec-v4.3")
        assert vcf_for_user == vcf_plain and reads_in(bam_plain, tmp_path) > 1000

        # Downloads keep running while the headers are rewritten: each must give the same bytes.
        rotating = threading.Event()
        during: list[tuple[int, bool]] = []

        def download_meanwhile() -> None:
            with httpx.Client(timeout=120) as other:
                while rotating.is_set():
                    answer = other.get(vcf_url, headers=vcf_headers)
                    during.append((answer.status_code, answer.content == vcf_plain))

        with client.stream("GET", bam_url, headers=bam_headers) as long_download:
            pieces = long_download.iter_bytes(1 << 16)
            received = b"".join(next(pieces) for _ in range(16))  # 1 MiB of 12, then the rotation
            rotating.set()
            meanwhile = threading.Thread(target=download_meanwhile)
            meanwhile.start()
            rotated = run_cli("rotate", "node-key", "-d", str(node.settings.data_dir), env=env)
            rotating.clear()
            meanwhile.join()
            received += b"".join(pieces)
        assert rotated.returncode == 0, rotated.stderr
        assert "3 stored headers re-encrypted" in rotated.stdout, rotated.stdout
        assert long_download.status_code == 200 and received == bam_plain, "the running download ended intact"
        assert during and all(status == 200 and same for status, same in during), during

        # After: the same plaintext, from new tickets, read by pysam and decrypted by the crypt4gh package.
        bam_url, bam_headers = access(client, bam_id)
        assert client.get(bam_url, headers=bam_headers).content == bam_plain
        assert htsget_c4gh(client, "spec-v4.3") == vcf_plain
    assert "Traceback" not in server.stop()

    after = stored(node.objects)
    new = load_keypair(keys_dir, "node")
    assert new.public != old.public
    rotations = [entry for entry in node.audit.entries() if entry.action == "keys.rotate"]
    assert [entry.details["public_key"] for entry in rotations] == [base64.b64encode(new.public).decode()]
    assert sorted(path.name for path in keys_dir.glob("node*")) == ["node.pub", "node.sec"], "the old key is gone"
    for key, old_bytes in before.items():
        new_bytes = after[key]
        scratch = tmp_path / "object.c4gh"
        scratch.write_bytes(new_bytes)
        with EncryptedFile(scratch, new.secret) as opened:
            header = opened.header_size
        assert len(new_bytes) == len(old_bytes) and new_bytes[:header] != old_bytes[:header]
        assert new_bytes[header:] == old_bytes[header:], f"{key}: data segments must be byte-for-byte untouched"
        # The attack: the old secret key, stolen before the rotation, opens no stored header any more.
        with pytest.raises(NotDecryptable):
            EncryptedFile(scratch, old.secret)
        with pytest.raises(ValueError):
            crypt4gh.lib.decrypt([(0, old.secret, None)], io.BytesIO(new_bytes), io.BytesIO())


def served_intact(client: httpx.Client) -> None:
    """Every file of the dataset downloads whole, with the sha-256 its DRS object announces."""
    for entry in client.get(f"{DRS}/objects/open").json()["contents"]:
        described = client.get(f"{DRS}/objects/{entry['id']}").json()
        url, headers = access(client, entry["id"])
        answer = client.get(url, headers=headers)
        checksum = next(item["checksum"] for item in described["checksums"] if item["type"] == "sha-256")
        assert answer.status_code == 200 and hashlib.sha256(answer.content).hexdigest() == checksum, entry["id"]


class CrashingStore:
    """The node's object store, as a process killed during a rotation leaves it: the second rewrite never lands."""

    def __init__(self, objects: ObjectStore) -> None:
        self._objects = objects
        self.replaced = 0

    def replace(self, source: Path, key: str) -> None:
        if self.replaced == 1:
            raise OSError("killed")
        self.replaced += 1
        self._objects.replace(source, key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._objects, name)


def test_a_rotation_stopped_half_way_serves_everything_and_finishes_when_run_again(
    small_node: tuple[Node, dict[str, str]], serve: type[Server]
) -> None:
    node, env = small_node
    keys_dir = node.settings.keys_dir
    before = stored(node.objects)
    with pytest.raises(OSError, match="killed"):
        rotate_node_key(keys_dir, CrashingStore(node.objects), pause=0)  # type: ignore[arg-type]
    assert (keys_dir / "node.next.sec").is_file(), "the new key waits beside the old one"
    halfway = stored(node.objects)
    assert sum(halfway[key] != before[key] for key in before) == 1, "one header was rewritten"

    server = serve(node.settings.data_dir, env)
    with httpx.Client(base_url=server.url, timeout=120) as client:
        served_intact(client)
        resumed = run_cli("rotate", "node-key", "-d", str(node.settings.data_dir), env=env)
        assert resumed.returncode == 0, resumed.stderr
        assert "2 stored headers re-encrypted to the new key (1 already were)" in resumed.stdout, resumed.stdout
        served_intact(client)
    assert "Traceback" not in server.stop()
    assert sorted(path.name for path in keys_dir.glob("node*")) == ["node.pub", "node.sec"]
