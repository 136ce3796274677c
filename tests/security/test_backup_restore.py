"""`genoshare backup` and `restore` of a whole node: the restored node, served, gives the same bytes, and its
audit chain verifies; a damaged archive is refused rather than restored."""

from __future__ import annotations

import io
import json
import os
import tarfile
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from processes import Server, run_cli

pytestmark = pytest.mark.slow

DATA = Path(__file__).resolve().parents[2] / "src" / "genoshare" / "demo" / "data"
VCF = DATA / "htsget" / "vcf" / "spec-v4.3.vcf.gz"
ENV = {"GENOSHARE_DATABASE_URL": ""}


def make_node(directory: Path) -> None:
    steps = [
        ("init",),
        ("datasets", "create", "pub", "--title", "T", "--custodian", "C", "--duo", "NRES", "--access", "public"),
        ("ingest", "pub", str(VCF)),
    ]
    for step in steps:
        done = run_cli(*step, "-d", str(directory), env=ENV)
        assert done.returncode == 0, done.stderr


def download(server: Server) -> tuple[str, bytes]:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        object_id = client.get("/ga4gh/drs/v1/objects/pub").json()["contents"][0]["id"]
        access = client.get(f"/ga4gh/drs/v1/objects/{object_id}/access/https").json()
        headers = dict(header.split(": ", 1) for header in access.get("headers", []))
        return object_id, client.get(access["url"], headers=headers).content


def test_a_restored_node_serves_the_same_bytes_and_its_chain_verifies(tmp_path: Path, serve: type[Server]) -> None:
    original, archive, restored = tmp_path / "original", tmp_path / "node.backup", tmp_path / "restored"
    make_node(original)
    made = run_cli("backup", str(archive), "-d", str(original), env=ENV)
    assert made.returncode == 0, made.stderr
    assert archive.stat().st_mode & 0o077 == 0, "the archive holds the keys: for its owner only"
    again = run_cli("backup", str(archive), "-d", str(original), env=ENV)
    assert again.returncode == 1 and "never overwrites" in again.stderr

    server = serve(original, ENV)
    before = download(server)
    server.stop()
    back = run_cli("restore", str(archive), "-d", str(restored), env=ENV)
    assert back.returncode == 0, back.stderr
    assert "verified" in back.stdout and "audit chain intact" in back.stdout
    assert run_cli("audit", "verify", "-d", str(restored), env=ENV).returncode == 0
    assert download(serve(restored, ENV)) == before


def test_a_damaged_archive_is_refused(tmp_path: Path) -> None:
    original, archive = tmp_path / "original", tmp_path / "node.backup"
    assert run_cli("init", "-d", str(original), env=ENV).returncode == 0
    assert run_cli("backup", str(archive), "-d", str(original), env=ENV).returncode == 0
    damaged = tmp_path / "damaged.backup"
    with tarfile.open(archive) as source, tarfile.open(damaged, "w") as target:
        for member in source.getmembers():
            data = source.extractfile(member)
            content = data.read() if data else b""
            if member.name == "data/keys/ticket.secret":
                content = bytes(32)
            member.size = len(content)
            target.addfile(member, io.BytesIO(content))
    refused = run_cli("restore", str(damaged), "-d", str(tmp_path / "restored"), env=ENV)
    assert refused.returncode == 1 and "damaged" in refused.stderr and "ticket.secret" in refused.stderr
    assert not (tmp_path / "restored").exists()


@pytest.mark.postgres
def test_a_postgres_node_is_restored_into_an_empty_database(tmp_path: Path) -> None:
    admin = make_url(os.environ.get("GENOSHARE_TEST_POSTGRES_URL") or pytest.fail("needs PostgreSQL"))
    names = [f"gs_backup_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        source, target = (admin.set(database=name).render_as_string(hide_password=False) for name in names)
        original, archive, restored = tmp_path / "original", tmp_path / "pg.backup", tmp_path / "restored"
        env = {"GENOSHARE_DATABASE_URL": source}
        assert run_cli("init", "-d", str(original), env=env).returncode == 0
        made = run_cli(
            "datasets",
            "create",
            "kept",
            "--title",
            "T",
            "--custodian",
            "C",
            "--duo",
            "GRU",
            "-d",
            str(original),
            env=env,
        )
        assert made.returncode == 0, made.stderr
        assert run_cli("backup", str(archive), "-d", str(original), env=env).returncode == 0
        # No GENOSHARE_DATABASE_URL: the restored genoshare.toml names the new database.
        back = run_cli("restore", str(archive), "-d", str(restored), "--database-url", target)
        assert back.returncode == 0, back.stderr
        listed = run_cli("datasets", "list", "--json", "-d", str(restored))
        assert [dataset["id"] for dataset in json.loads(listed.stdout)] == ["kept"]
    finally:
        with engine.connect() as connection:
            for name in names:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
