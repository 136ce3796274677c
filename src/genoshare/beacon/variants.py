"""Beacon g_variant request parameters turned into one precise variant query.

Coordinates are 0-based half-open, as Beacon v2 and the variant index use them. Query kinds:

- sequence: ``start`` (one value) + ``alternateBases`` [+ ``referenceBases``]: variants starting there;
- range: ``start`` + ``end`` (one value each): variants overlapping ``[start, end)``;
- bracket: ``start`` and ``end`` with two values each: variants starting in ``[start0, start1]`` and ending
  in ``[end0, end1]`` (both inclusive);
- gene: ``geneId``: variants overlapping the gene's span on the dataset's assembly.

``variantType``, ``variantMinLength``/``variantMaxLength`` and bases narrow any kind; ``N`` in bases is a
wildcard for one base.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pyroaring import BitMap

from genoshare.beacon.errors import BeaconBadRequest

_BASES = re.compile(r"^[ACGTUNRYSWKMBDHV.\-]*$")
#: Beacon and VCF names for the same types; EFO ids from the spec's examples.
TYPE_ALIASES = {
    "EFO:0030070": "DUP",
    "EFO:0030067": "DEL",
    "EFO:0030068": "DEL",
    "EFO:0030069": "DEL",
    "EFO:0030071": "DUP",
    "EFO:0030072": "DUP",
    "SNV": "SNP",
}
INDEL_TYPES = frozenset({"INDEL", "DEL", "INS"})
_SUPPORTED = {
    "referenceName", "start", "end", "referenceBases", "alternateBases", "variantType", "variantMinLength",
    "variantMaxLength", "assemblyId", "geneId",
}  # fmt: skip


@dataclass(frozen=True)
class VariantQuery:
    contig: str | None = None
    #: Inclusive bounds on a variant's start / end.
    start_min: int | None = None
    start_max: int | None = None
    end_min: int | None = None
    end_max: int | None = None
    #: Half-open window the variant must overlap.
    overlap: tuple[int, int] | None = None
    reference_bases: str | None = None
    alternate_bases: str | None = None
    variant_types: frozenset[str] | None = None
    min_length: int | None = None
    max_length: int | None = None
    assembly_id: str | None = None
    gene_id: str | None = None

    @property
    def is_empty(self) -> bool:
        return self.contig is None and self.gene_id is None

    def with_gene(self, contig: str, start: int, end: int) -> VariantQuery:
        return VariantQuery(**{**self.__dict__, "contig": contig, "overlap": (start, end)})

    def accepts(self, hit: VariantHit) -> bool:
        """The narrowing checks, applied to candidate rows a positional lookup returned."""
        return (
            (self.start_min is None or hit.start >= self.start_min)
            and (self.start_max is None or hit.start <= self.start_max)
            and (self.end_min is None or hit.end >= self.end_min)
            and (self.end_max is None or hit.end <= self.end_max)
            and (self.overlap is None or (hit.start < self.overlap[1] and hit.end > self.overlap[0]))
            and (self.reference_bases is None or bases_match(self.reference_bases, hit.ref))
            and (self.alternate_bases is None or bases_match(self.alternate_bases, hit.alt))
            and (self.variant_types is None or hit.variant_type in self.variant_types)
            and (self.min_length is None or hit.length >= self.min_length)
            and (self.max_length is None or hit.length <= self.max_length)
        )


@dataclass(frozen=True)
class VariantHit:
    contig: str
    start: int
    end: int
    ref: str
    alt: str
    variant_type: str
    length: int
    ac: int
    an: int
    carriers: BitMap

    @property
    def internal_id(self) -> str:
        """Stable, public, and free of sample information: the allele itself."""
        return f"{self.contig}:{self.start}:{self.ref}:{self.alt}"


def parse_internal_id(value: str) -> tuple[str, int, str, str]:
    parts = value.rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        raise BeaconBadRequest(f"variant id {value!r} is not contig:start:ref:alt")
    return parts[0], int(parts[1]), parts[2], parts[3]


def bases_match(pattern: str, bases: str) -> bool:
    pattern = pattern.upper()
    if pattern in ("", "-", "."):
        return bases in ("", "-", ".")
    return len(pattern) == len(bases) and all(p in ("N", b) for p, b in zip(pattern, bases.upper(), strict=True))


def _bases(name: str, value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).upper()
    if not _BASES.match(text):
        raise BeaconBadRequest(f"{name} {value!r} has characters other than IUPAC bases")
    return text


def _types(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    kind = TYPE_ALIASES.get(str(value), str(value).upper())
    return INDEL_TYPES if kind == "INDEL" else frozenset({kind})


def build_query(parameters: Mapping[str, Any]) -> VariantQuery:
    unknown = set(parameters) - _SUPPORTED
    if unknown:
        raise BeaconBadRequest(f"unsupported request parameters: {', '.join(sorted(unknown))}")
    starts: list[int] = list(parameters.get("start") or [])
    ends: list[int] = list(parameters.get("end") or [])
    contig = parameters.get("referenceName")
    common: dict[str, Any] = {
        "reference_bases": _bases("referenceBases", parameters.get("referenceBases")),
        "alternate_bases": _bases("alternateBases", parameters.get("alternateBases")),
        "variant_types": _types(parameters.get("variantType")),
        "min_length": parameters.get("variantMinLength"),
        "max_length": parameters.get("variantMaxLength"),
        "assembly_id": parameters.get("assemblyId"),
    }
    if any(n < 0 for n in (*starts, *ends)) or len(starts) > 2 or len(ends) > 2:
        raise BeaconBadRequest("start and end take one or two non-negative coordinates")
    if "geneId" in parameters:
        if starts or ends or contig:
            raise BeaconBadRequest("geneId replaces referenceName/start/end: send one or the other")
        return VariantQuery(gene_id=str(parameters["geneId"]), **common)
    if not starts and not ends and contig is None:
        if any(value is not None for value in common.values() if value != common["assembly_id"]):
            raise BeaconBadRequest("a variant query needs referenceName and start (or geneId)")
        return VariantQuery(**common)
    if contig is None or not starts:
        raise BeaconBadRequest("a variant query needs both referenceName and start")
    contig = str(contig).removeprefix("refseq:")
    if len(starts) == 2 or len(ends) == 2:
        if len(starts) != 2 or len(ends) != 2:
            raise BeaconBadRequest("a bracket query takes two values in both start and end")
        if starts[0] > starts[1] or ends[0] > ends[1]:
            raise BeaconBadRequest("bracket bounds must be ordered: start[0] <= start[1], end[0] <= end[1]")
        return VariantQuery(
            contig=contig, start_min=starts[0], start_max=starts[1], end_min=ends[0], end_max=ends[1], **common
        )
    if ends:
        if ends[0] <= starts[0]:
            raise BeaconBadRequest("end must be greater than start")
        return VariantQuery(contig=contig, overlap=(starts[0], ends[0]), **common)
    if common["alternate_bases"] is None and common["variant_types"] is None:
        raise BeaconBadRequest("a query with start and no end needs alternateBases (or variantType)")
    return VariantQuery(contig=contig, start_min=starts[0], start_max=starts[0], **common)


_ASSEMBLY_SYNONYMS = {"hg38": "GRCh38", "hg19": "GRCh37", "b37": "GRCh37", "hs37d5": "GRCh37"}


def canonical_assembly(name: str) -> str:
    """GRCh38.p13, hg38 and GRCh38 name one coordinate system; patches do not move coordinates."""
    text = name.strip()
    lowered = text.lower()
    if lowered in _ASSEMBLY_SYNONYMS:
        return _ASSEMBLY_SYNONYMS[lowered]
    if lowered.startswith("grch"):
        return "GRCh" + text[4:].split(".", 1)[0]
    if lowered.startswith("gcf_000001405.") or lowered.startswith("gca_000001405."):
        patch = int(text.split(".", 1)[1])
        return "GRCh38" if patch >= 26 else "GRCh37"
    return text
