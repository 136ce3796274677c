"""Pseudonyms replace sample names only where sample names stand: a sample may be called ``1`` or ``GT``.

Issue 12: ingest replaced each sample name wherever it stood as a token in the header text, so samples
called ``1``, ``GT``, ``PASS`` and ``chr1`` gave ``##fileformat=VCFv4.GS1AB...``, ``Number=GS...``, a
renamed ``PASS`` filter and a renamed contig, and the corrupted file was published.  Here the file is
downloaded from a real ``genoshare serve`` and read with pysam.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pysam

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor

from support import pseudonyms_by_source

SAMPLES = ["1", "GT", "PASS", "chr1", "Integer"]
HEADER = """##fileformat=VCFv4.2
##FILTER=<ID=PASS,Description="All filters passed">
##FILTER=<ID=q10,Description="Quality below 10">
##INFO=<ID=DP,Number=1,Type=Integer,Description="Total depth">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Read depth">
##contig=<ID=chr1,length=248956422>
##contig=<ID=chr2,length=242193529>
##commandline=bcftools call -o 1.vcf GT.bam PASS.bam chr1.bam
"""
GENOTYPES = ["0/1", "1/1", "0/0", "./.", "0|1"]


def write_vcf(path: Path) -> Path:
    rows = [
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *SAMPLES]),
    ]
    for index, (chrom, pos) in enumerate([("chr1", 100), ("chr1", 2000), ("chr2", 50)]):
        calls = [f"{GENOTYPES[(index + n) % len(GENOTYPES)]}:{n + 1}" for n in range(len(SAMPLES))]
        rows.append(
            "\t".join([chrom, str(pos), ".", "A", "G", "50", "PASS" if index else "q10", "DP=12", "GT:DP", *calls])
        )
    text = path.with_suffix("")
    text.write_text(HEADER + "\n".join(rows) + "\n")
    pysam.tabix_compress(str(text), str(path), force=True)
    return path


def records(path: Path) -> list[tuple]:
    with pysam.VariantFile(str(path)) as variants:
        return [
            (
                r.chrom,
                r.pos,
                r.ref,
                r.alts,
                tuple(r.filter),
                r.info["DP"],
                tuple((s["GT"], s["DP"]) for s in r.samples.values()),
            )
            for r in variants
        ]


def test_samples_named_like_header_tokens_leave_the_header_intact(node: Node, serve, tmp_path: Path) -> None:
    source = write_vcf(tmp_path / "tokens.vcf.gz")
    DatasetService(node.database).create(
        NewDataset(id="tokens", title="T", custodian="C", access_level="public", duo_codes=["GRU"])
    )
    row = build_ingestor(node).ingest("tokens", [source]).published[0]
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    served = tmp_path / "served.vcf.gz"
    with httpx.Client(timeout=30) as http:
        access = http.get(f"{server.url}/ga4gh/drs/v1/objects/{row.id}/access/https")
        assert access.status_code == 200, access.text
        body = access.json()
        response = http.get(body["url"], headers=dict(line.split(": ", 1) for line in body.get("headers", [])))
        assert response.status_code == 200
        served.write_bytes(response.content)

    pseudonyms = pseudonyms_by_source(node, SAMPLES)
    with pysam.VariantFile(str(served)) as variants:
        header = variants.header
        assert header.version == "VCFv4.2"
        assert list(header.contigs) == ["chr1", "chr2"]
        assert header.contigs["chr1"].length == 248956422
        assert {name: str(header.formats[name].number) for name in header.formats} == {"GT": "1", "DP": "1"}
        assert (header.info["DP"].number, header.info["DP"].type) == (1, "Integer")
        assert set(header.filters) >= {"PASS", "q10"}
        assert list(header.samples) == [pseudonyms[name] for name in SAMPLES]
        text = str(header)
    assert "GS" not in text.replace("\t".join(pseudonyms[name] for name in SAMPLES), ""), (
        "a pseudonym stands somewhere other than the sample columns"
    )
    assert "commandline" not in text, "free-text provenance (file names are sample names) is not stored"
    assert records(served) == records(source)
