"""Beacon g_variant request parameters turned into one precise variant query.

Coordinates are 0-based half-open, as Beacon v2 and the variant index use them. Query kinds:

- sequence: ``start`` (one value) [+ ``alternateBases``/``referenceBases``]: variants starting there;
- range: ``start`` + ``end`` (one value each): variants overlapping ``[start, end)``;
- bracket: ``start`` or ``end`` with two values: variants starting in ``[start0, start1]`` and ending
  in ``[end0, end1]`` (both inclusive; a single value on the other side is an exact position);
- gene: ``geneId``: variants overlapping the gene's span on the dataset's assembly.

``variantType``, ``variantMinLength``/``variantMaxLength`` and bases narrow any kind; ``N`` in bases is a
wildcard for one base. Every parameter is one more condition on the answer, so any combination the
OpenAPI declares valid has an answer rather than an error (schemathesis holds the node to that): no
``referenceName`` means any contig, ``end`` alone the window ``[0, end)``, an empty window or an
unordered bracket no variant, and a query with no parameter at all every variant (non-filtered).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

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
        """No condition at all: a non-filtered query, whose answer is every variant in the datasets."""
        return self == VariantQuery(assembly_id=self.assembly_id)

    def with_gene(self, contig: str, start: int, end: int) -> VariantQuery:
        """The gene's span as the overlap window, intersected with any window and contig also asked for."""
        low, high = start, end
        if self.overlap is not None:
            low, high = max(low, self.overlap[0]), min(high, self.overlap[1])
        if self.contig is not None and _bare(self.contig) != _bare(contig):
            high = low  # a gene on another contig: nothing overlaps both
        return replace(self, contig=contig, overlap=(low, high))


def _bare(contig: str) -> str:
    return contig.removeprefix("chr")


def parse_internal_id(value: str) -> tuple[str, int, str, str] | None:
    """``contig:start:ref:alt``, or None for an id this node never gives out."""
    parts = value.rsplit(":", 3)
    if len(parts) != 4 or not parts[1].isdigit() or not all(parts):
        return None
    return parts[0], int(parts[1]), parts[2].upper(), parts[3].upper()


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
    if any(n < 0 for n in (*starts, *ends)) or len(starts) > 2 or len(ends) > 2:
        raise BeaconBadRequest("start and end take one or two non-negative coordinates")
    contig = parameters.get("referenceName")
    query = VariantQuery(
        contig=None if contig is None else str(contig).removeprefix("refseq:"),
        reference_bases=_bases("referenceBases", parameters.get("referenceBases")),
        alternate_bases=_bases("alternateBases", parameters.get("alternateBases")),
        variant_types=_types(parameters.get("variantType")),
        min_length=parameters.get("variantMinLength"),
        max_length=parameters.get("variantMaxLength"),
        assembly_id=parameters.get("assemblyId"),
        gene_id=None if parameters.get("geneId") is None else str(parameters["geneId"]),
    )
    if len(starts) == 2 or len(ends) == 2:
        start_bounds = (starts[0], starts[-1]) if starts else (None, None)
        end_bounds = (ends[0], ends[-1]) if ends else (None, None)
        return replace(
            query, start_min=start_bounds[0], start_max=start_bounds[1], end_min=end_bounds[0], end_max=end_bounds[1]
        )
    if starts and ends:
        return replace(query, overlap=(starts[0], ends[0]))
    if starts:
        return replace(query, start_min=starts[0], start_max=starts[0])
    if ends:
        return replace(query, overlap=(0, ends[0]))
    return query


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
