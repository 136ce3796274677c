"""Reads a whole file with htslib (pysam) before anything is published.

Every record is decoded once, which catches corrupt BGZF blocks, truncation and malformed records, and the
sort order is checked because htsget and Beacon region queries are only correct on sorted files.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pysam

from genoshare.formats import FileFormat, has_bgzf_eof
from genoshare.ingest.errors import IngestError

#: Called with (bytes read so far, total bytes).
Progress = Callable[[int, int], None]
_REPORT_EVERY = 10_000


@dataclass(frozen=True)
class FileReport:
    format: FileFormat
    records: int
    contigs: tuple[str, ...]
    samples: tuple[str, ...] = field(default=())
    #: The header as text, for the identifier check; never logged.
    header: str = field(default="", repr=False)


def _compressed_offset(virtual_offset: int) -> int:
    return virtual_offset >> 16


def validate(path: Path, fmt: FileFormat, progress: Progress | None = None, shown_as: Path | None = None) -> FileReport:
    """Check the whole file; errors name ``shown_as`` (the steward's file) when ``path`` is a staged copy."""
    # htslib would otherwise try to fetch CRAM references from the EBI server.
    os.environ.setdefault("REF_PATH", ":")
    size = path.stat().st_size
    if fmt is not FileFormat.CRAM and not has_bgzf_eof(path):
        raise IngestError(shown_as or path, "truncated: the BGZF end-of-file marker is missing")
    # htslib prints to stderr when a file has no index yet, which is the normal case here.
    verbosity = pysam.set_verbosity(0)
    try:
        if fmt.is_variants:
            return _validate_variants(path, fmt, size, progress, shown_as or path)
        return _validate_reads(path, fmt, size, progress)
    except IngestError:
        raise
    except (OSError, ValueError) as error:
        raise IngestError(shown_as or path, f"unreadable {fmt} file: {error}") from error
    finally:
        pysam.set_verbosity(verbosity)


def _validate_variants(path: Path, fmt: FileFormat, size: int, progress: Progress | None, shown: Path) -> FileReport:
    with pysam.VariantFile(str(path)) as variants:
        if fmt is FileFormat.BCF and not variants.is_bcf:
            raise IngestError(shown, "named .bcf but is not BCF")
        _check_header_lines(variants.header, shown)
        header_contigs = tuple(contig.name for contig in variants.header.contigs.values())
        declared = _declared_tags(variants.header)
        samples = tuple(variants.header.samples)
        header = str(variants.header)
        finished: set[str] = set()
        current: str | None = None
        last_pos = -1
        records = 0
        for records, record in enumerate(variants, start=1):
            contig = record.chrom
            if contig != current:
                if contig not in header_contigs:
                    raise IngestError(
                        shown,
                        f"contig {contig} is not declared in the header, so the file cannot be subset or merged; "
                        f"add a ##contig=<ID={contig},length=...> line (bcftools reheader) and ingest again",
                        f"record {records}, {contig}:{record.pos}",
                    )
                if contig in finished:
                    raise IngestError(
                        shown,
                        f"records of contig {contig} are not together: file is not sorted",
                        f"record {records}, {contig}:{record.pos}",
                    )
                if current is not None:
                    finished.add(current)
                current, last_pos = contig, -1
            if record.pos < last_pos:
                raise IngestError(
                    shown,
                    "positions go backwards: file is not sorted",
                    f"record {records}, {contig}:{record.pos} after {last_pos}",
                )
            last_pos = record.pos
            if progress and records % _REPORT_EVERY == 0:
                progress(_compressed_offset(variants.tell()), size)
        # htslib adds a String definition for every undeclared tag it meets; bcftools then refuses to subset.
        undeclared = {
            kind: sorted(set(tags) - declared[kind]) for kind, tags in _declared_tags(variants.header).items()
        }
    for kind, tags in undeclared.items():
        if tags:
            raise IngestError(
                shown,
                f"{kind} tag {tags[0]} is used but not declared in the header"
                + (f" (nor {', '.join(tags[1:])})" if tags[1:] else "")
                + f", so the file cannot be subset; add a ##{kind}=<ID={tags[0]},Number=...,Type=...,"
                'Description="..."> line (bcftools annotate --header-lines) and ingest again',
                _first_use(path, kind, tags[0]),
            )
    if progress:
        progress(size, size)
    return FileReport(fmt, records, header_contigs, samples, header)


_TYPES = {
    "INFO": {"Integer", "Float", "Flag", "Character", "String"},
    "FORMAT": {"Integer", "Float", "Character", "String"},
}
_NUMBERS = {"A", "R", "G", "."}


def _check_header_lines(header: pysam.VariantHeader, shown: Path) -> None:
    """Refuse the definitions htslib only warns about (and then reads as something else)."""
    for line in header.records:
        if line.type not in _TYPES:
            continue
        fields = dict(line.items())
        tag, kind = fields.get("ID", "?"), line.type
        declared_type, number = fields.get("Type"), fields.get("Number")
        if declared_type not in _TYPES[kind]:
            raise IngestError(
                shown,
                f"##{kind} {tag} has Type={declared_type}, which is not a VCF type "
                f"({', '.join(sorted(_TYPES[kind]))}); correct the header line and ingest again",
                "header",
            )
        if number is None or not (number.isdigit() or number in _NUMBERS):
            raise IngestError(
                shown,
                f"##{kind} {tag} has Number={number}, which is not a VCF number (an integer, A, R, G or .); "
                "correct the header line and ingest again",
                "header",
            )
        if declared_type == "Flag" and number != "0":
            raise IngestError(
                shown, f"##{kind} {tag} is a Flag with Number={number} (a Flag has Number=0); correct it", "header"
            )


def _declared_tags(header: pysam.VariantHeader) -> dict[str, set[str]]:
    return {"INFO": set(header.info), "FORMAT": set(header.formats), "FILTER": set(header.filters)}


def _first_use(path: Path, kind: str, tag: str) -> str:
    """Where a tag is first used: read again only when the file is refused anyway."""
    with pysam.VariantFile(str(path)) as variants:
        for number, record in enumerate(variants, start=1):
            if kind == "INFO":
                found = tag in record.info
            elif kind == "FORMAT":
                found = tag in record.format
            else:
                found = tag in record.filter
            if found:
                return f"record {number}, {record.chrom}:{record.pos}"
    return "records"


def _validate_reads(path: Path, fmt: FileFormat, size: int, progress: Progress | None) -> FileReport:
    with pysam.AlignmentFile(str(path), require_index=False, check_sq=False) as reads:
        if fmt is FileFormat.BAM and not reads.is_bam:
            raise IngestError(path, "named .bam but is not BAM")
        sort_order = reads.header.to_dict().get("HD", {}).get("SO")
        if sort_order not in (None, "coordinate"):
            raise IngestError(path, f"not coordinate-sorted (header says SO:{sort_order}); run samtools sort")
        last = (-1, -1)
        seen_unmapped = False
        records = 0
        for records, read in enumerate(reads.fetch(until_eof=True), start=1):
            if read.reference_id < 0:
                seen_unmapped = True
            else:
                if seen_unmapped:
                    raise IngestError(
                        path,
                        "mapped read after unplaced reads: file is not sorted",
                        f"record {records}, read {read.query_name}",
                    )
                key = (read.reference_id, read.reference_start)
                if key < last:
                    raise IngestError(
                        path,
                        "positions go backwards: file is not coordinate-sorted",
                        f"record {records}, {read.reference_name}:{read.reference_start + 1}",
                    )
                last = key
            # CRAM offsets are container offsets, not BGZF virtual ones: it reports at the end only.
            if progress and fmt is FileFormat.BAM and records % _REPORT_EVERY == 0:
                progress(_compressed_offset(reads.tell()), size)
        contigs = tuple(reads.references)
        samples = tuple(sorted({group["SM"] for group in reads.header.to_dict().get("RG", []) if "SM" in group}))
        header = str(reads.header)
    if progress:
        progress(size, size)
    return FileReport(fmt, records, contigs, samples, header)
