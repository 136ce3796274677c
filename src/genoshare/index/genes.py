"""Gene symbol -> coordinates, for Beacon `geneId` queries.

No coordinates are shipped: they come from the GTF/GFF3 annotation the node operator gives at ingest
(e.g. GENCODE or Ensembl for the assembly of the data), so they always match the data's assembly.
"""

from __future__ import annotations

import gzip
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

_GTF_ATTRIBUTE = re.compile(r'\s*(\S+)\s+"?([^";]*)"?\s*')


@dataclass(frozen=True)
class GeneLocation:
    """0-based half-open coordinates, ready for `VariantIndex.range_query`."""

    symbol: str
    gene_id: str
    contig: str
    start: int
    end: int
    strand: str


def _attributes(field: str, gff3: bool) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for item in field.strip().rstrip(";").split(";"):
        if not item.strip():
            continue
        if gff3:
            key, _, value = item.partition("=")
            pairs[key.strip()] = value.strip()
        elif match := _GTF_ATTRIBUTE.fullmatch(item):
            pairs.setdefault(match.group(1), match.group(2))
    return pairs


def _open(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return gzip.open(path, "rt")
    return path.open()


class GeneTable:
    """Case-insensitive symbol lookup; a symbol can map to several loci (e.g. PAR genes on X and Y)."""

    def __init__(self, genes: list[GeneLocation]) -> None:
        self._by_symbol: dict[str, list[GeneLocation]] = defaultdict(list)
        for gene in genes:
            keys = {gene.symbol.upper(), gene.gene_id.upper(), gene.gene_id.split(".", 1)[0].upper()}
            for key in keys:
                self._by_symbol[key].append(gene)

    @classmethod
    def from_annotation(cls, path: Path | str) -> GeneTable:
        """Read `gene` features of a GTF or GFF3 file (optionally gzipped); the format is told by `=`."""
        genes: list[GeneLocation] = []
        with _open(Path(path)) as handle:
            for line in handle:
                if line.startswith("#") or not line.strip():
                    continue
                fields = line.rstrip("\n").split("\t")
                if len(fields) != 9 or fields[2] != "gene":
                    continue
                attrs = _attributes(fields[8], gff3="=" in fields[8] and '"' not in fields[8])
                gene_id = attrs.get("gene_id") or attrs.get("ID", "").removeprefix("gene:")
                symbol = attrs.get("gene_name") or attrs.get("Name") or gene_id
                # GTF/GFF3 are 1-based inclusive.
                genes.append(GeneLocation(symbol, gene_id, fields[0], int(fields[3]) - 1, int(fields[4]), fields[6]))
        return cls(genes)

    def lookup(self, symbol_or_id: str) -> list[GeneLocation]:
        """Loci of a gene symbol (`BRCA2`) or stable id with or without version (`ENSG00000139618`)."""
        return list(self._by_symbol.get(symbol_or_id.upper(), []))
