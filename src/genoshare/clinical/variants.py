"""One variant as a clinician writes it: VCF coordinates or HGVS genomic, read into VCF terms.

Accepted: ``1-12345-A-G``, ``1:12345:A:G``, ``chr1 12345 A G`` (VCF: 1-based position, reference and
alternate alleles) and HGVS genomic substitutions on a RefSeq chromosome, ``NC_000001.11:g.12345A>G``, whose
accession version names the assembly (GRCh37 or GRCh38). HGVS deletions, insertions, duplications and
deletion-insertions (``g.123_125del``, ``g.123_124insAC``, ``g.123dup``, ``g.123delinsGT``; ``m.`` on the
mitochondrion) are read when the steward configured a reference genome of their assembly
(``clinical.reference_fasta``, ``genoshare.clinical.reference``): the VCF form needs the base before the
change, and the record left-aligned as VCFs hold it. Without one they are refused with that reason.
GA4GH VRS identifiers (``ga4gh:VA.…``) are digests that cannot be read back into a variant: they are
refused (with a reference, the lookup's answer gives the VRS id of the variant asked about).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Protocol

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
_HGVS_OTHER = re.compile(r"NC_0+[0-9]+\.[0-9]+:[gm]\.[0-9_]+(del|ins|dup|inv|delins)", re.IGNORECASE)
_HGVS_INDEL = re.compile(r"(NC_0+[0-9]+\.[0-9]+):([gm])\.([0-9]+)(?:_([0-9]+))?(delins|del|dup|ins)([ACGTN]*)")
#: The largest position a variant can have: BCF and the databases' integers hold no more (no genome comes near).
MAX_POSITION = 2**31 - 1
#: Longer is no variant a person types: refused before the patterns above (whose runs of digits backtrack
#: for minutes on 100 000 characters) or ``int`` (which refuses over 4300 digits with a ValueError) see it.
MAX_VARIANT_TEXT = 1000
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


class Bases(Protocol):
    """A reference genome's sequences (``genoshare.clinical.reference.ReferenceGenome``)."""

    @property
    def assembly(self) -> str: ...
    def __contains__(self, contig: object) -> bool: ...
    def length(self, contig: str) -> int: ...
    def bases(self, contig: str, start: int, end: int) -> str: ...


def normalise_contig(name: str) -> str:
    """``chr1`` and ``1`` name one contig; ``chrM``, ``M`` and ``MT`` the mitochondrion."""
    contig = re.sub(r"^chr", "", name.strip(), flags=re.IGNORECASE)
    upper = contig.upper()
    if upper in ("M", "MT"):
        return "MT"
    return upper if upper in ("X", "Y") else contig


def parse_allele(text: str, assembly: str = "GRCh38", reference: Bases | None = None) -> Allele:
    """Read one variant; ``assembly`` applies to VCF coordinates (HGVS names its own).

    With a ``reference`` of the variant's assembly, HGVS indels are read too, and every variant's
    reference allele is checked against it (a mistyped position is said, not looked up as another variant).
    """
    given = text.strip()
    if len(given) > MAX_VARIANT_TEXT:
        raise InvalidInput(f"a variant is at most {MAX_VARIANT_TEXT} characters, not {len(given)}")
    indel = _HGVS_INDEL.fullmatch(given)
    if indel is not None and reference is not None:
        allele = _hgvs_indel(given, indel, reference)
    else:
        allele = _parse(given, assembly)
    if not 1 <= allele.position <= MAX_POSITION:
        raise InvalidInput(f"{given!r}: a position runs from 1 to {MAX_POSITION}")
    if reference is not None and reference.assembly == allele.assembly and allele.contig in reference:
        end = allele.position - 1 + len(allele.ref)
        if end > reference.length(allele.contig):
            raise InvalidInput(f"{given!r}: {allele.contig} has {reference.length(allele.contig)} bases")
        found = reference.bases(allele.contig, allele.position - 1, end)
        if found != allele.ref and "N" not in allele.ref:
            raise InvalidInput(
                f"{given!r}: the reference ({reference.assembly}) has {found} at {allele.contig}:{allele.position}, "
                f"not {allele.ref}"
            )
    return allele


def _parse(given: str, assembly: str) -> Allele:
    if given.lower().startswith("ga4gh:va.") or given.lower().startswith("ga4gh:"):
        raise InvalidInput(
            "GA4GH VRS identifiers cannot be looked up here: a VRS id is a digest, which cannot be read back "
            "into a variant, and this node keeps no index of the VRS ids of the alleles it holds; give VCF "
            "coordinates (1-12345-A-G) or HGVS genomic (NC_000001.11:g.12345A>G): with a reference genome "
            "configured, the answer carries the variant's VRS id"
        )
    if _HGVS_INDEL.fullmatch(given) or _HGVS_OTHER.match(given):
        raise InvalidInput(
            f"{given!r}: an HGVS deletion, insertion or duplication needs the reference base before it to be "
            "written as VCF, and this node has no reference genome configured (clinical.reference_fasta): "
            "give it as VCF coordinates (1-12344-CA-C)"
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


def _accession(accession: str, given: str) -> tuple[str, str]:
    """A RefSeq chromosome accession -> (assembly, contig); the mitochondrion is the same in both."""
    if accession == _MITOCHONDRION:
        return "", "MT"
    number, version = accession.removeprefix("NC_").split(".")
    known = _REFSEQ.get((int(number), int(version)))
    if known is None:
        raise InvalidInput(f"{given!r}: {accession} is not a GRCh37 or GRCh38 chromosome accession known here")
    return known


def _hgvs_indel(given: str, found: re.Match[str], reference: Bases) -> Allele:
    """An HGVS deletion, insertion, duplication or deletion-insertion as a left-aligned VCF record."""
    accession, kind, first, last, change, bases = found.groups()
    assembly, contig = _accession(accession, given)
    if (contig == "MT") != (kind == "m"):
        raise InvalidInput(f"{given!r}: the mitochondrion takes m. positions, chromosomes g.")
    assembly = assembly or reference.assembly
    if assembly != reference.assembly:
        raise InvalidInput(f"{given!r} is on {assembly}; the configured reference genome is {reference.assembly}")
    if contig not in reference:
        raise InvalidInput(f"{given!r}: contig {contig} is not in the configured reference genome")
    start, end = int(first), int(last or first)
    if not 1 <= start <= end <= reference.length(contig):
        raise InvalidInput(f"{given!r}: positions must run from 1 to {reference.length(contig)}, first to last")
    span = reference.bases(contig, start - 1, end)
    if change == "ins":
        if last is None or end != start + 1 or not bases:
            raise InvalidInput(f"{given!r}: an insertion is between two adjacent positions, e.g. g.123_124insAC")
        allele = Allele(assembly, contig, start, span[0], span[0] + bases)
    elif change == "dup":
        if bases and bases != span:
            raise InvalidInput(f"{given!r}: the reference has {span} there, not {bases}")
        allele = Allele(assembly, contig, end, span[-1], span[-1] + span)
    elif change == "delins":
        if not bases:
            raise InvalidInput(f"{given!r}: a deletion-insertion names the inserted bases, e.g. g.123delinsAC")
        allele = Allele(assembly, contig, start, span, bases)
    else:
        if bases and bases != span:
            raise InvalidInput(f"{given!r}: the reference has {span} there, not {bases}")
        if start == 1:  # nothing before it: VCF takes the base after
            after = reference.bases(contig, end, end + 1)
            allele = Allele(assembly, contig, 1, span + after, after)
        else:
            before = reference.bases(contig, start - 2, start - 1)
            allele = Allele(assembly, contig, start - 1, before + span, before)
    if allele.ref == allele.alt:
        raise InvalidInput(f"{given!r}: the change leaves the reference as it is")
    return left_align(allele, reference)


def left_align(allele: Allele, reference: Bases) -> Allele:
    """The leftmost, shortest VCF record of the same change (Tan et al. 2015, Bioinformatics 31:2202)."""
    position, ref, alt = allele.position, allele.ref, allele.alt
    while True:
        if ref and alt and ref[-1] == alt[-1]:
            ref, alt = ref[:-1], alt[:-1]
        elif (not ref or not alt) and position > 1:
            base = reference.bases(allele.contig, position - 2, position - 1)
            position, ref, alt = position - 1, base + ref, base + alt
        else:
            break
    while len(ref) > 1 and len(alt) > 1 and ref[0] == alt[0]:
        position, ref, alt = position + 1, ref[1:], alt[1:]
    if not ref or not alt:  # at the very start of the contig: anchor on the base after
        after = reference.bases(allele.contig, position - 1, position)
        ref, alt = ref + after, alt + after
    return replace(allele, position=position, ref=ref, alt=alt)
