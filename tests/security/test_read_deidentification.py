"""BAM/CRAM de-identification reaches every record, and a withdrawal keeps the other people's reads.

Issue 12: de-identification rewrote only the header.  The original sample names stayed in every read's
``RG:Z`` (the read-group ids were the sample names), in read names and in per-read ``CO:Z`` tags, e-mail
addresses included.  A withdrawal then re-derived the BAM with zero reads (the header's read groups had
been renamed, the reads' had not) and published it as available.

Attacked through a real ``genoshare serve``: the bytes a caller downloads are decoded with pysam, header
and every record, and searched for each original name, e-mail address and free-text value.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from pathlib import Path

import httpx
import pysam
import pytest

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.errors import GenoshareError
from genoshare.node import Node, build_consent, build_ingestor, build_rederiver
from genoshare.store.models import DataObject

from support import OPERATOR, pseudonyms_by_source

DRS = "/ga4gh/drs/v1"
#: sample name (also the read-group id, as many pipelines do) -> e-mail in that person's read comments
PEOPLE = {
    "alice.smith": "alice.smith@hospital.example.org",
    "bob.jones": "bob.jones@hospital.example.org",
    "carol.white": "carol.white@clinic.example.net",
}
FREE_TEXT = ("ward 9 cohort", "consented by", "private note", "Smith family")
CONTIG_LENGTH = 20_000


def write_reads(path: Path, with_reads: tuple[str, ...] = tuple(PEOPLE)) -> int:
    """A coordinate-sorted multi-sample BAM or CRAM whose records carry the names everywhere they occur
    in the wild; returns how many reads it holds.  Only the people in ``with_reads`` have reads."""
    rng = random.Random(7)
    reference = "".join(rng.choice("ACGT") for _ in range(CONTIG_LENGTH))
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": "chr1", "LN": CONTIG_LENGTH, "UR": "file:///home/jdoe/refs/ref.fa"}],
        "RG": [
            {"ID": name, "SM": name, "LB": f"lib-{name}", "PU": f"FC1.{name}", "DS": f"{FREE_TEXT[1]} {name}"}
            for name in PEOPLE
        ],
        "PG": [{"ID": "bwa", "PN": "bwa", "VN": "0.7.17", "CL": "bwa mem ref.fa alice.smith_R1.fq bob.jones_R1.fq"}],
        "CO": [f"{FREE_TEXT[0]}: alice.smith, bob.jones and carol.white"],
    }
    reads = []
    for pair in range(300):
        name = with_reads[pair % len(with_reads)]
        start = rng.randrange(0, CONTIG_LENGTH - 400)
        for mate, (position, flag) in enumerate(((start, 99), (start + 250, 147))):
            reads.append((position, mate, pair, name, flag, 350 if mate == 0 else -350))
    reads.sort()
    fmt = "wc" if path.suffix == ".cram" else "wb"
    options = ["embed_ref=2"] if fmt == "wc" else None
    with pysam.AlignmentFile(str(path), fmt, header=header, format_options=options) as out:
        for position, mate, pair, name, flag, tlen in reads:
            read = pysam.AlignedSegment(out.header)
            read.query_name = f"{name}:run7:{pair}"
            read.flag = flag
            read.reference_id = read.next_reference_id = 0
            read.reference_start, read.mapping_quality, read.cigarstring = position, 60, "100M"
            read.next_reference_start = position + 250 if mate == 0 else position - 250
            read.template_length = tlen
            read.query_sequence = reference[position : position + 100]
            read.query_qualities = pysam.qualitystring_to_array("I" * 100)
            read.set_tags(
                [
                    ("RG", name, "Z"),
                    ("CO", f"{FREE_TEXT[2]}: contact {PEOPLE[name]}", "Z"),
                    ("XN", f"{FREE_TEXT[3]} {name}", "Z"),
                    ("LB", f"lib-{name}", "Z"),
                    ("NM", 0, "i"),
                ]
            )
            out.write(read)
    return len(reads)


def public_dataset(node: Node) -> None:
    DatasetService(node.database).create(
        NewDataset(id="reads", title="T", custodian="C", access_level="public", duo_codes=["GRU"])
    )


def download(http: httpx.Client, url: str, object_id: str, path: Path) -> httpx.Response:
    """The object's bytes as any caller of the public dataset gets them, through DRS."""
    access = http.get(f"{url}{DRS}/objects/{object_id}/access/https")
    if access.status_code != 200:
        return access
    body = access.json()
    headers = dict(line.split(": ", 1) for line in body.get("headers", []))
    response = http.get(body["url"], headers=headers)
    if response.status_code == 200:
        path.write_bytes(response.content)
    return response


def sam_text(path: Path) -> tuple[str, list[pysam.AlignedSegment]]:
    with pysam.AlignmentFile(str(path), require_index=False, check_sq=False) as reads:
        records = list(reads.fetch(until_eof=True))
        return str(reads.header) + "".join(read.to_string() + "\n" for read in records), records


def pseudonyms(node: Node) -> dict[str, str]:
    return pseudonyms_by_source(node, PEOPLE)


def assert_nothing_identifying(text: str) -> None:
    leaked = [
        secret for secret in (*PEOPLE, *PEOPLE.values(), *FREE_TEXT, "jdoe", "run7", "lib-", "FC1.") if secret in text
    ]
    assert not leaked, f"reached the served file: {leaked}"
    without_header_tags = text.replace("@HD", "").replace("@SQ", "").replace("@RG", "").replace("@PG", "")
    assert "@" not in without_header_tags, "an e-mail address (or its remains) reached the served file"


def test_no_original_name_or_comment_in_any_served_record(
    node: Node, serve, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REF_PATH", ":")
    sources = [tmp_path / "family.bam", tmp_path / "family.cram"]
    totals = [write_reads(source) for source in sources]
    public_dataset(node)
    rows = build_ingestor(node).ingest("reads", sources).published
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url, "REF_PATH": ":"})
    served = [tmp_path / f"served{source.suffix}" for source in sources]
    with httpx.Client(timeout=30) as http:
        for row, path in zip(rows, served, strict=True):
            assert download(http, server.url, row.id, path).status_code == 200

    names = pseudonyms(node)
    for path, total in zip(served, totals, strict=True):
        text, records = sam_text(path)
        assert_nothing_identifying(text)
        assert len(records) == total
        with pysam.AlignmentFile(str(path), require_index=False) as reads:
            groups = {group["ID"]: group["SM"] for group in reads.header.to_dict()["RG"]}
        assert sorted(groups.values()) == sorted(names.values())
        # Every read still names a declared read group, and mates still share one (new) name.
        assert all(read.get_tag("RG") in groups for read in records)
        assert set(Counter(read.query_name for read in records).values()) == {2}
        for pair in Counter((read.query_name, read.get_tag("RG")) for read in records).values():
            assert pair == 2, "both mates of a pair keep one name and one read group"


def test_withdrawal_keeps_the_other_participants_reads(node: Node, serve, tmp_path: Path) -> None:
    source = tmp_path / "family.bam"
    total = write_reads(source)
    public_dataset(node)
    row = build_ingestor(node).ingest("reads", [source]).published[0]
    names = pseudonyms(node)
    consent = build_consent(node)
    token = consent.issue_link(consent.find("reads", names["bob.jones"]), OPERATOR.actor)
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    served = tmp_path / "served.bam"
    with httpx.Client(timeout=30) as http:
        withdrawal = http.post(f"{server.url}/consent/withdraw", headers={"X-Consent-Token": token})
        assert withdrawal.status_code == 200, withdrawal.text
        assert withdrawal.json()["rederiving"] == [row.id]
        deadline = time.monotonic() + 60
        while download(http, server.url, row.id, served).status_code != 200:
            assert time.monotonic() < deadline, "the re-derived BAM was not served again within 60 s"
            time.sleep(0.2)

    _, records = sam_text(served)
    with pysam.AlignmentFile(str(served), require_index=False) as reads:
        samples = {group["ID"]: group["SM"] for group in reads.header.to_dict()["RG"]}
    assert sorted(samples.values()) == sorted([names["alice.smith"], names["carol.white"]])
    assert names["bob.jones"] not in str(pysam.AlignmentFile(str(served), require_index=False).header)
    kept = Counter(samples[read.get_tag("RG")] for read in records)
    # 300 pairs dealt round-robin: 100 pairs, 200 reads, for each person.
    assert kept == {names["alice.smith"]: 200, names["carol.white"]: 200}, "the others' reads must stay"
    assert len(records) == total - 200


def test_a_re_derivation_that_would_leave_no_read_is_not_published(node: Node, serve, tmp_path: Path) -> None:
    source = tmp_path / "family.bam"
    write_reads(source, with_reads=("alice.smith",))  # bob and carol are declared but have no reads
    public_dataset(node)
    row = build_ingestor(node).ingest("reads", [source]).published[0]
    consent = build_consent(node)
    consent.withdraw(consent.find("reads", pseudonyms(node)["alice.smith"]), OPERATOR.actor)
    with pytest.raises(GenoshareError, match="no read"):
        build_rederiver(node).rederive(row.id)
    with node.database.sessions() as session:
        stored = session.get(DataObject, row.id)
        assert stored is not None and stored.status != "available"
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    with httpx.Client(timeout=30) as http:
        refused = download(http, server.url, row.id, tmp_path / "served.bam")
    assert refused.status_code == 403, "an emptied file must not be served as available"
