"""Read a materialised htsget answer back with pysam and compare it with pysam's own region query.

Everything here is the test oracle, so it leans only on pysam/htslib and the Python standard library,
never on the engine under test.
"""

from __future__ import annotations

import gzip
from collections import Counter
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pysam

from genoshare.formats import FileFormat
from genoshare.htsget.ranges import ByteRange, InlineBlock

BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")
CRAM_EOF = bytes.fromhex("0f000000ffffffff0fe0454f4600000000010005bdd94f0001000606010001000100ee63014b")
DEMO = Path(__file__).resolve().parents[2] / "src" / "genoshare" / "demo" / "data" / "htsget"
SUFFIX = {FileFormat.BAM: ".bam", FileFormat.CRAM: ".cram", FileFormat.VCF: ".vcf.gz", FileFormat.BCF: ".bcf"}


@dataclass(frozen=True, eq=False)
class Dataset:
    """One data file with one of its indexes, plus what is needed to read it back."""

    name: str
    fmt: FileFormat
    data: Path
    index: Path
    contigs: dict[str, int]  # name -> length, from the header
    reference_fasta: Path | None = None

    def __str__(self) -> str:
        return self.name


def materialize(blocks: list[ByteRange | InlineBlock], data: Path) -> bytes:
    """What an htsget client would assemble from a ticket."""
    raw = data.read_bytes()
    out = bytearray()
    for block in blocks:
        if isinstance(block, ByteRange):
            assert 0 <= block.start < block.end <= len(raw), block
            out += raw[block.start : block.end]
        else:
            out += block.data
    return bytes(out)


# (key identifying the record, reference name or "*", 0-based start, 0-based exclusive end)
Record = tuple[tuple[object, ...], str, int, int]


def _read_record(read: pysam.AlignedSegment) -> Record:
    # htslib's overlap rule: an unmapped or zero-length read covers one base at its position.
    length = 0 if read.is_unmapped else (read.reference_length or 0)
    start = read.reference_start
    name = read.reference_name or "*"
    return (read.query_name, read.flag, name, start, read.cigarstring), name, start, start + max(length, 1)


def _variant_record(record: pysam.VariantRecord) -> Record:
    key = (record.chrom, record.pos, record.id, record.ref, record.alts)
    return key, record.chrom, record.start, record.stop


def records_of(ds: Dataset, path: Path) -> list[Record]:
    """Every record of a file, in file order, read to the end (so a corrupt tail raises)."""
    if ds.fmt.is_reads:
        reference = str(ds.reference_fasta) if ds.reference_fasta else None
        with pysam.AlignmentFile(str(path), check_sq=False, reference_filename=reference) as reads:
            return [_read_record(read) for read in reads.fetch(until_eof=True)]
    with pysam.VariantFile(str(path)) as variants:
        return [_variant_record(record) for record in variants]


def header_text(ds: Dataset, path: Path) -> str:
    if ds.fmt.is_reads:
        with pysam.AlignmentFile(str(path), check_sq=False) as reads:
            return str(reads.header)
    with pysam.VariantFile(str(path)) as variants:
        return str(variants.header)


@cache
def source_records(ds: Dataset) -> list[Record]:
    return records_of(ds, ds.data)


@cache
def all_records(ds: Dataset) -> Counter[tuple[object, ...]]:
    return Counter(key for key, *_ in source_records(ds))


@cache
def raw_bytes(path: Path) -> bytes:
    return path.read_bytes()


def expected(ds: Dataset, contig: str | None, start: int | None, end: int | None) -> Counter[tuple[object, ...]]:
    """pysam's answer on the original file with its own index lookup."""
    if contig is None:
        return all_records(ds)
    if contig == "*":
        # Not fetch("*"): htslib's CRAM iterator stops after the first slice of unplaced reads.
        return Counter(key for key, name, *_ in source_records(ds) if name == "*")
    if ds.fmt.is_reads:
        reference = str(ds.reference_fasta) if ds.reference_fasta else None
        with pysam.AlignmentFile(str(ds.data), reference_filename=reference) as reads:
            return Counter(_read_record(read)[0] for read in reads.fetch(contig, start, end))
    with pysam.VariantFile(str(ds.data)) as variants:
        return Counter(_variant_record(record)[0] for record in variants.fetch(contig, start, end))


def overlapping(records: list[Record], contig: str | None, start: int | None, end: int | None) -> Counter:
    if contig is None:
        return Counter(key for key, *_ in records)
    lo = start or 0
    hi = 2**63 if end is None else end
    if contig == "*":
        return Counter(key for key, name, *_ in records if name == "*")
    # htslib returns nothing for an empty interval, even for records starting there.
    if lo >= hi:
        return Counter()
    return Counter(key for key, name, s, e in records if name == contig and s < hi and e > lo)


def check_container(ds: Dataset, blob: bytes) -> None:
    """The bytes form a valid container: intact compression and the mandatory EOF marker."""
    if ds.fmt is FileFormat.CRAM:
        assert blob.startswith(b"CRAM")
        assert blob.endswith(CRAM_EOF)
    else:
        assert blob.endswith(BGZF_EOF)
        gzip.decompress(blob)  # every member must inflate and pass its CRC


def check_sorted(ds: Dataset, records: list[Record]) -> None:
    """Records come in file order, so the answer stays coordinate-sorted like its source."""
    order = {name: i for i, name in enumerate(ds.contigs)}
    keys = [(order.get(name, len(order)) if name != "*" else len(order) + 1, s) for _, name, s, _ in records]
    assert keys == sorted(keys)


def _demo_datasets() -> list[Dataset]:
    def contigs_of(path: Path, fmt: FileFormat) -> dict[str, int]:
        if fmt.is_reads:
            with pysam.AlignmentFile(str(path)) as reads:
                return dict(zip(reads.references, reads.lengths, strict=True))
        with pysam.VariantFile(str(path)) as variants:
            return {name: contig.length or 0 for name, contig in variants.header.contigs.items()}

    specs = [
        ("demo-bam", FileFormat.BAM, "bam/htsnexus_test_NA12878.bam", ".bai"),
        ("demo-cram", FileFormat.CRAM, "cram/htsnexus_test_NA12878.cram", ".crai"),
        ("demo-vcf-spec", FileFormat.VCF, "vcf/spec-v4.3.vcf.gz", ".tbi"),
        ("demo-vcf-bcbio", FileFormat.VCF, "vcf/sample1-bcbio-cancer.vcf.gz", ".tbi"),
        ("demo-bcf-spec", FileFormat.BCF, "bcf/spec-v4.3.bcf", ".csi"),
        ("demo-bcf-bcbio", FileFormat.BCF, "bcf/sample1-bcbio-cancer.bcf", ".csi"),
    ]
    return [
        Dataset(name, fmt, DEMO / rel, DEMO / (rel + ext), contigs_of(DEMO / rel, fmt)) for name, fmt, rel, ext in specs
    ]


DEMO_DATASETS = _demo_datasets()
