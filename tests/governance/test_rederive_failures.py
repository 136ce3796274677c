"""A withdrawal must not block a shared file for everyone: ingest refuses what cannot be subset later, an
older file is repaired when it is rewritten, and a rewrite that still fails is told to the steward in one
line, shown by ``consent list`` and retried (issue 13, item 2)."""

from __future__ import annotations

import gzip
import json
import re
import time
from pathlib import Path

import pysam
import pytest

from genoshare.crypt.files import encrypt_file
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.governance import rederive
from genoshare.ingest.errors import IngestError
from genoshare.node import Node, build_consent, build_ingestor, build_rederivations, build_rederiver
from genoshare.store.blobs import copy_plaintext
from genoshare.store.models import DataObject

from governance_support import VCF, Cohort
from processes import run_cli
from support import OPERATOR

#: The spec's example VCF with one header defect each; htslib only warns about every one of them.
DEFECTS = {
    "undeclared contig": (r"##contig=<ID=20,[^\n]*\n", "", "contig 20 is not declared", "##contig=<ID=20"),
    "undeclared INFO": (r"##INFO=<ID=DP,[^\n]*\n", "", "INFO tag DP is used but not declared", "##INFO=<ID=DP"),
    "undeclared FORMAT": (r"##FORMAT=<ID=HQ,[^\n]*\n", "", "FORMAT tag HQ is used but not declared", "##FORMAT"),
    "misspelt type": (r"Type=Float", "Type=Flaot", "Type=Flaot, which is not a VCF type", "correct the header"),
}


def defective(tmp_path: Path, defect: str) -> Path:
    pattern, replacement, _, _ = DEFECTS[defect]
    with gzip.open(VCF, "rt") as original:
        text = re.sub(pattern, replacement, original.read(), count=1)
    plain = tmp_path / "family.vcf"
    plain.write_text(text)
    return plain


def controlled(node: Node, dataset_id: str = "family") -> None:
    DatasetService(node.database).create(
        NewDataset(id=dataset_id, title="T", custodian="C", access_level="controlled", duo_codes=["GRU"])
    )


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_ingest_refuses_a_header_that_would_block_subsetting(node: Node, tmp_path: Path, defect: str) -> None:
    controlled(node)
    with pytest.raises(IngestError) as refused:
        build_ingestor(node).ingest("family", [defective(tmp_path, defect)])
    message = refused.value.message
    _, _, what, how = DEFECTS[defect]
    assert message.startswith("family.vcf (") and "\n" not in message
    assert what in message and how in message
    assert DatasetService(node.database).objects("family") == []


def test_the_ingest_command_says_what_where_and_how_in_one_line(node: Node, tmp_path: Path) -> None:
    controlled(node)
    result = run_cli(
        "ingest", "family", str(defective(tmp_path, "undeclared contig")), "-d", str(node.settings.data_dir)
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "[W::" not in result.stderr
    (line,) = [line for line in result.stderr.splitlines() if line.strip()]
    assert "family.vcf (record 1, 20:14370): contig 20 is not declared" in line and "##contig=<ID=20" in line


def _replace_stored(node: Node, row: DataObject, tmp_path: Path, edit: str) -> bytes:
    """Put other bytes in a published blob, as an older genoshare or a failing disk would have; returns the old."""
    blob = node.objects.local_path(row.blob_key)
    original = blob.read_bytes()
    if edit == "garbage":
        blob.write_bytes(b"not crypt4gh at all")
        return original
    plain = tmp_path / "stored.vcf.gz"
    copy_plaintext(node.objects, node.keys.secret, row, plain)
    with gzip.open(plain, "rt") as stored:
        text = stored.read()
    text = re.sub(r"##contig=<ID=20,[^\n]*\n", "", text)
    text = re.sub(r"##INFO=<ID=DP,[^\n]*\n", "", text)
    (tmp_path / "sloppy.vcf").write_text(text)
    pysam.tabix_compress(str(tmp_path / "sloppy.vcf"), str(tmp_path / "sloppy.vcf.gz"), force=True)
    encrypt_file(tmp_path / "sloppy.vcf.gz", tmp_path / "sloppy.c4gh", node.keys)
    blob.write_bytes((tmp_path / "sloppy.c4gh").read_bytes())
    return original


def _samples(node: Node, object_id: str, tmp_path: Path) -> list[str]:
    with node.database.sessions() as session:
        row = session.get(DataObject, object_id)
    assert row is not None and row.status == "available"
    plain = tmp_path / f"now-{row.sha256}.vcf.gz"
    copy_plaintext(node.objects, node.keys.secret, row, plain)
    with pysam.VariantFile(str(plain)) as variants:
        return list(variants.header.samples)


def test_a_file_published_with_undeclared_ids_is_repaired_when_rewritten(cohort: Cohort, tmp_path: Path) -> None:
    node, data_dir = cohort.node, str(cohort.node.settings.data_dir)
    _replace_stored(node, cohort.multi, tmp_path, "sloppy")
    gone = cohort.pseudonyms["NA00001"]
    result = run_cli("consent", "withdraw", "cohort", gone, "-d", data_dir, env={"COLUMNS": "300"})
    assert result.returncode == 0, result.stderr
    assert f"re-derived: {cohort.multi.id}" in result.stdout
    assert _samples(node, cohort.multi.id, tmp_path) == [cohort.pseudonyms["NA00002"], cohort.pseudonyms["NA00003"]]


def test_a_rewrite_that_fails_is_reported_in_one_line_listed_and_retried(cohort: Cohort, tmp_path: Path) -> None:
    node, data_dir, shared = cohort.node, str(cohort.node.settings.data_dir), cohort.multi.id
    original = _replace_stored(node, cohort.multi, tmp_path, "garbage")
    env = {"COLUMNS": "300"}

    withdrawn = run_cli("consent", "withdraw", "cohort", cohort.pseudonyms["NA00001"], "-d", data_dir, env=env)
    assert withdrawn.returncode == 1
    assert "Traceback" not in withdrawn.stderr, withdrawn.stderr
    assert len(withdrawn.stderr.strip().splitlines()) == 1, withdrawn.stderr
    line = withdrawn.stderr.strip()
    assert line.startswith(f"error: {shared} stays blocked for every grantee, re-deriving failed:")
    # What the withdrawal made unavailable is said, not "none".
    assert f"blocked until rewritten without them: {shared}" in withdrawn.stdout

    listed = run_cli("consent", "list", "cohort", "-d", data_dir, env=env)
    assert listed.returncode == 0, listed.stderr
    assert f"blocked until re-derived: {shared}; last attempt failed" in listed.stdout
    as_json = json.loads(run_cli("consent", "list", "cohort", "--json", "-d", data_dir).stdout)
    blocked = {entry["file"]: entry for record in as_json for entry in record["blocked"]}
    assert blocked[shared]["failure"] and blocked[shared]["failed_at"]

    again = run_cli("consent", "rederive", "-d", data_dir, env=env)
    assert again.returncode == 1 and "Traceback" not in again.stderr
    assert len([line for line in again.stderr.splitlines() if line.strip()]) == 1

    node.objects.local_path(cohort.multi.blob_key).write_bytes(original)
    fixed = run_cli("consent", "rederive", "-d", data_dir, env=env)
    assert fixed.returncode == 0, fixed.stderr
    assert f"re-derived: {shared}" in fixed.stdout
    assert "blocked" not in run_cli("consent", "list", "cohort", "-d", data_dir, env=env).stdout
    assert cohort.pseudonyms["NA00001"] not in _samples(node, shared, tmp_path)


def test_the_server_tries_a_failed_rewrite_again(
    cohort: Cohort, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node, shared = cohort.node, cohort.multi.id
    monkeypatch.setattr(rederive, "RETRY_FIRST_SECONDS", 0.2)
    original = _replace_stored(node, cohort.multi, tmp_path, "garbage")
    consent = build_consent(node)
    withdrawal = consent.withdraw(consent.find("cohort", cohort.pseudonyms["NA00001"]), OPERATOR.actor)
    worker = build_rederivations(node)
    try:
        assert worker.submit(withdrawal.rederiving)[0].result(timeout=60) is False
        (waiting,) = build_rederiver(node).blocked("cohort")
        assert waiting.object_id == shared and waiting.failure
        node.objects.local_path(cohort.multi.blob_key).write_bytes(original)  # the steward mends the disk
        deadline = time.monotonic() + 60
        while build_rederiver(node).blocked("cohort") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert build_rederiver(node).blocked("cohort") == [], "no retry brought the file back"
    finally:
        worker.shutdown()
    assert cohort.pseudonyms["NA00001"] not in _samples(node, shared, tmp_path)
