"""One variant as a clinician writes it: VCF coordinates or HGVS genomic, read into VCF terms.

Accepted: ``1-12345-A-G``, ``1:12345:A:G``, ``chr1 12345 A G`` (VCF: 1-based position, reference and
alternate alleles) and HGVS genomic substitutions on a RefSeq chromosome, ``NC_000001.11:g.12345A>G``, whose
accession version names the assembly (GRCh37 or GRCh38). HGVS deletions, insertions and duplications are
refused with the reason: their VCF form needs the base before them, from a reference genome the node does
not hold. GA4GH VRS identifiers (``ga4gh:VA.…``) are digests: looking one up means computing the VRS id
of every allele the node holds, which needs the refget digests of the reference sequences (SeqRepo), also
not held here; they are refused with that reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from genoshare.errors import InvalidInput

#: RefSeq chromosome accessions: GRCh38 versions are one above GRCh37's (NC_000001.10 -> .11) for 1-22, X, Y.
_GRCH37 = {
    1: 10, 2: 11, 3: 11, 4: 11, 5: 9, 6: 11, 7: 13, 8: 10, 9: 11, 10: 10, 11: 9, 12: 11,
    13: 10, 14: 8, 15: 9, 16: 9, 17: 10, 18: 9, 19: 9, 20: 10, 21: 8, 22: 10, 23: 10, 24: 9,
}  # fmt: skip
_REFSEQ: dict[tuple[int, int], tuple[str, str]] = {}
for _number, _version in _GRCH37.items():
    _name = {23: "X", 24: "Y"}.get(_number, str(_number))
    _REFSEQ[(_number, _version)] = ("GRCh37", _name)
    _REFSEQ[(_number, _version + 1)] = ("GRCh38", _name)

_VCF = re.compile(r"(?:chr)?([0-9]{1,2}|X|Y|MT?)[-:\s]+([0-9]+)[-:\s]+([ACGTN]+)[-:\s>]+([ACGTN]+)", re.IGNORECASE)
_HGVS = re.compile(r"NC_0+([0-9]+)\.([0-9]+):g\.([0-9]+)([ACGT])>([ACGT])")
_HGVS_OTHER = re.compile(r"NC_0+[0-9]+\.[0-9]+:g\.[0-9_]+(del|ins|dup|inv|delins)", re.IGNORECASE)
#: The largest position a variant can have: BCF and the databases' integers hold no more (no genome comes near).
MAX_POSITION = 2**31 - 1
_MITOCHONDRION = "NC_012920.1"


@dataclass(frozen=True)
class Allele:
    """VCF terms: contig without ``chr`` (``MT`` for the mitochondrion), 1-based position, alleles."""

    assembly: str
    contig: str
    position: int
    ref: str
    alt: str

    @property
    def label(self) -> str:
        return f"{self.contig}-{self.position}-{self.ref}-{self.alt} ({self.assembly})"


def normalise_contig(name: str) -> str:
    """``chr1`` and ``1`` name one contig; ``chrM``, ``M`` and ``MT`` the mitochondrion."""
    contig = re.sub(r"^chr", "", name.strip(), flags=re.IGNORECASE)
    upper = contig.upper()
    if upper in ("M", "MT"):
        return "MT"
    return upper if upper in ("X", "Y") else contig


def parse_allele(text: str, assembly: str = "GRCh38") -> Allele:
    """Read one variant; ``assembly`` applies to VCF coordinates (HGVS names its own)."""
    allele = _parse(text.strip(), assembly)
    if not 1 <= allele.position <= MAX_POSITION:
        raise InvalidInput(f"{text.strip()!r}: a position runs from 1 to {MAX_POSITION}")
    return allele


def _parse(given: str, assembly: str) -> Allele:
    if given.lower().startswith("ga4gh:va.") or given.lower().startswith("ga4gh:"):
        raise InvalidInput(
            "GA4GH VRS identifiers cannot be looked up here: a VRS id is a digest, and matching it needs the "
            "refget digests of the reference sequences (SeqRepo), which this node does not hold; give VCF "
            "coordinates (1-12345-A-G) or HGVS genomic (NC_000001.11:g.12345A>G)"
        )
    if given.startswith(_MITOCHONDRION + ":"):
        found = re.fullmatch(r"NC_012920\.1:m\.([0-9]+)([ACGT])>([ACGT])", given)
        if found is None:
            raise InvalidInput(f"{given!r}: the mitochondrion takes m. substitutions, e.g. NC_012920.1:m.3243A>G")
        return Allele(assembly, "MT", int(found.group(1)), found.group(2), found.group(3))
    if given.startswith("NC_"):
        return _hgvs(given)
    found = _VCF.fullmatch(given)
    if found is None:
        raise InvalidInput(
            f"{given!r} is not a variant this node reads: give VCF coordinates (1-12345-A-G, chromosome, "
            "1-based position, reference and alternate alleles) or HGVS genomic (NC_000001.11:g.12345A>G)"
        )
    contig, position, ref, alt = found.groups()
    if int(position) < 1:
        raise InvalidInput("VCF positions start at 1")
    if ref.upper() == alt.upper():
        raise InvalidInput(f"{given!r}: the alternate allele is the reference allele")
    return Allele(assembly, normalise_contig(contig), int(position), ref.upper(), alt.upper())


def _hgvs(given: str) -> Allele:
    if _HGVS_OTHER.match(given):
        raise InvalidInput(
            f"{given!r}: only HGVS substitutions (g.12345A>G) are read; a deletion, insertion or duplication "
            "needs the reference base before it to be written as VCF, and this node holds no reference genome: "
            "give it as VCF coordinates (1-12344-CA-C)"
        )
    found = _HGVS.fullmatch(given)
    if found is None:
        raise InvalidInput(f"{given!r} is not an HGVS genomic substitution such as NC_000001.11:g.12345A>G")
    chromosome, version, position, ref, alt = found.groups()
    known = _REFSEQ.get((int(chromosome), int(version)))
    if known is None:
        raise InvalidInput(
            f"NC_{int(chromosome):06d}.{version} is not a GRCh37 or GRCh38 chromosome accession known here"
        )
    if ref == alt:
        raise InvalidInput(f"{given!r}: the alternate allele is the reference allele")
    assembly, contig = known
    return Allele(assembly, contig, int(position), ref, alt)
