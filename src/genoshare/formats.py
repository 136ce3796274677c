"""The genomic file formats the node stores and serves, and how to recognise them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

from genoshare.errors import InvalidInput


class FileFormat(StrEnum):
    BAM = "BAM"
    CRAM = "CRAM"
    VCF = "VCF"
    BCF = "BCF"

    @property
    def is_variants(self) -> bool:
        return self in (FileFormat.VCF, FileFormat.BCF)

    @property
    def is_reads(self) -> bool:
        return self in (FileFormat.BAM, FileFormat.CRAM)

    @property
    def mime_type(self) -> str:
        return {
            "BAM": "application/vnd.ga4gh.bam",
            "CRAM": "application/vnd.ga4gh.cram",
            "VCF": "application/vnd.ga4gh.vcf",
            "BCF": "application/vnd.ga4gh.bcf",
        }[self.value]

    @property
    def index_format(self) -> str:
        return {"BAM": "bai", "CRAM": "crai", "VCF": "tbi", "BCF": "csi"}[self.value]

    @property
    def extension(self) -> str:
        return {"BAM": ".bam", "CRAM": ".cram", "VCF": ".vcf.gz", "BCF": ".bcf"}[self.value]


#: Longest first, so that ``.vcf.gz`` wins over ``.gz``.
_SUFFIXES = (
    (".vcf.bgz", FileFormat.VCF),
    (".vcf.gz", FileFormat.VCF),
    (".vcf", FileFormat.VCF),
    (".bcf", FileFormat.BCF),
    (".bam", FileFormat.BAM),
    (".cram", FileFormat.CRAM),
)


def split_name(name: str) -> tuple[str, FileFormat]:
    """``"a.vcf.gz"`` -> ``("a", VCF)``: the stem becomes the htsget id."""
    lowered = name.lower()
    for suffix, fmt in _SUFFIXES:
        if lowered.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], fmt
    raise InvalidInput(f"{name}: not a genomic file this node ingests (.vcf.gz, .vcf, .bcf, .bam, .cram)")


def detect(path: Path) -> FileFormat:
    """The format by name, confirmed by the file's magic bytes so a misnamed file is caught early."""
    _, fmt = split_name(path.name)
    try:
        with path.open("rb") as handle:
            head = handle.read(4)
    except OSError as error:
        raise InvalidInput(f"{path}: cannot read ({error.strerror})") from error
    if fmt is FileFormat.CRAM:
        expected_ok = head == b"CRAM"
    elif fmt is FileFormat.VCF and path.name.lower().endswith(".vcf"):
        expected_ok = head.startswith(b"##")
    else:
        # BAM, BCF and compressed VCF are BGZF: gzip magic, then a BGZF extra field.
        expected_ok = head[:2] == b"\x1f\x8b"
    if not expected_ok:
        raise InvalidInput(f"{path}: named like {fmt} but its first bytes are not ({head!r})")
    return fmt


#: The empty block that ends every BGZF file (SAM spec 4.1.2); its absence means truncation.
BGZF_EOF = bytes.fromhex("1f8b08040000000000ff0600424302001b0003000000000000000000")


def has_bgzf_eof(path: Path) -> bool:
    with path.open("rb") as handle:
        handle.seek(max(0, path.stat().st_size - len(BGZF_EOF)))
        return handle.read() == BGZF_EOF


def is_bgzf(path: Path) -> bool:
    with path.open("rb") as handle:
        header = handle.read(18)
    return len(header) == 18 and header[:4] == b"\x1f\x8b\x08\x04" and header[12:14] == b"BC"


__all__ = ["BGZF_EOF", "FileFormat", "detect", "has_bgzf_eof", "is_bgzf", "split_name"]
