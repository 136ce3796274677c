"""A BAM's or VCF's index is a DRS object of its own, linked to its data file, readable by whom may read the file.

Issue 18 (must-have 6): DRS served the data files without their indexes, so a DRS client could download a
BAM but not read it by region (samtools, IGV and bcftools need the ``.bai``/``.tbi`` beside it). Through
``genoshare serve``: the file and its index name each other; the index downloaded through DRS opens the file
downloaded through DRS by region; ``genoshare objects list`` shows the link; a caller who may not read the
file gets the same refusal for its index as for an id that does not exist.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pysam
from big_files import long_read_bam
from granted import DRS, Grantee, build_study, researcher_passport

from genoshare.access.issuer import VisaIssuer
from genoshare.node import Node, build_ingestor

from processes import run_cli


def download(http: httpx.Client, grantee: Grantee, drs_id: str, path: Path) -> Path:
    url, ticket = grantee.data_ticket(drs_id)
    answer = http.get(url, headers=ticket)
    assert answer.status_code == 200, answer.text
    path.write_bytes(answer.content)
    return path


def test_an_index_is_served_beside_its_file(node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path) -> None:
    study = build_study(node, tmp_path, individuals=2)
    bam = build_ingestor(node).ingest("study", [long_read_bam(tmp_path / "person.bam", "S1", 2)]).published[0]
    listed = run_cli("objects", "list", "study", "--json", "--data-dir", str(node.settings.data_dir))
    assert listed.returncode == 0, listed.stderr
    indexes = {row["id"]: row["index"] for row in json.loads(listed.stdout)}
    assert indexes == {bam.id: f"{bam.id}.bai", study.vcf.id: f"{study.vcf.id}.{study.vcf.index_format}"}

    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    host = server.url.split("://", 1)[1]
    with httpx.Client(timeout=30) as http:
        grantee = Grantee(http, server.url, issuer, "alice")
        for row, opener in ((bam, "bam"), (study.vcf, "vcf")):
            index = indexes[row.id]
            data = http.get(f"{server.url}{DRS}/objects/{row.id}", headers=grantee.headers).json()
            assert f"index:drs://{host}/{index}" in data["aliases"], data["aliases"]
            described = http.get(f"{server.url}{DRS}/objects/{index}", headers=grantee.headers)
            assert described.status_code == 200, described.text
            assert described.json()["name"] == f"{row.name}.{row.index_format}"
            assert f"index-of:drs://{host}/{row.id}" in described.json()["aliases"]

            folder = tmp_path / opener
            folder.mkdir()
            data_path = download(http, grantee, row.id, folder / row.name)
            index_path = download(http, grantee, index, folder / f"{row.name}.{row.index_format}")
            sums = {c["type"]: c["checksum"] for c in described.json()["checksums"]}
            assert sums["sha-256"] == hashlib.sha256(index_path.read_bytes()).hexdigest()
            assert described.json()["size"] == index_path.stat().st_size
            # The index found by name beside the file reads it by region, as samtools or bcftools would.
            if opener == "bam":
                with pysam.AlignmentFile(str(data_path)) as reads:
                    assert reads.check_index()
                    assert sum(1 for _ in reads.fetch("chr1", 0, 10_000_000)) > 0
            else:
                with pysam.VariantFile(str(data_path)) as variants:
                    contig = next(iter(variants.header.contigs))
                    assert sum(1 for _ in variants.fetch(contig)) > 0

        # Without a grant: the index of a controlled file is refused as an id that does not exist.
        registered = {"Authorization": f"Bearer {researcher_passport(issuer, 'bob')}"}
        for caller in ({}, registered):
            hidden = http.get(f"{server.url}{DRS}/objects/{indexes[bam.id]}", headers=caller)
            absent = http.get(f"{server.url}{DRS}/objects/study.nothing.bam.bai", headers=caller)
            assert hidden.status_code == absent.status_code in (401, 403), hidden.text
