"""`genoshare backup` leaves out the lock files, and a node restored without them makes its own.

The lock files (`genoshare.db-lock`, `genoshare.db-keys-lock` beside the SQLite database, `keys/.writers.lock`,
the object store's) are empty files whose `flock` locks belong to the processes of one machine. Archived, they
were restored as node data: listed in the manifest, checked, copied to another machine. Run through the CLI:
a node that has ingested (so every lock file exists), its backup, a restore, and an ingest into the restored
node, which must make the lock files it uses.
"""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

from processes import run_cli
from support import HTSGET_DATA

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
BCF = HTSGET_DATA / "bcf" / "sample1-bcbio-cancer.bcf"
ENV = {"GENOSHARE_DATABASE_URL": ""}
#: Each relative to the data directory; the ones an ingest takes.
LOCKS = ["genoshare.db-lock", "genoshare.db-keys-lock", "keys/.writers.lock"]


def cli(*args: str) -> str:
    done = run_cli(*args, env=ENV)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_backup_holds_no_lock_file_and_the_restored_node_makes_them(tmp_path: Path) -> None:
    original, archive, restored = tmp_path / "original", tmp_path / "node.backup", tmp_path / "restored"
    cli("init", "-d", str(original))
    cli("datasets", "create", "pub", "--title", "T", "--custodian", "C", "--duo", "NRES", "--access", "public",
        "-d", str(original))  # fmt: skip
    cli("ingest", "pub", str(VCF), "-d", str(original))
    assert all((original / lock).is_file() for lock in LOCKS), "the ingest did not take the locks"

    cli("backup", str(archive), "-d", str(original))
    with tarfile.open(archive) as members:
        names = members.getnames()
        manifest = json.loads(members.extractfile("manifest.json").read())  # type: ignore[union-attr]
    named = [name for name in names + list(manifest["files"]) if name.endswith("lock")]
    assert not named, f"lock files archived: {named}"
    assert any(name.startswith("data/keys/") for name in names), "the keys were not archived"

    said = cli("restore", str(archive), "-d", str(restored))
    assert "verified" in said and "audit chain intact" in said
    copy = tmp_path / BCF.name
    copy.write_bytes(BCF.read_bytes())
    cli("ingest", "pub", str(copy), "-d", str(restored))
    listed = json.loads(cli("objects", "list", "pub", "--json", "-d", str(restored)))
    assert len(listed) == 2, listed
    assert all((restored / lock).is_file() for lock in LOCKS), "the restored node's ingest made no lock file"
