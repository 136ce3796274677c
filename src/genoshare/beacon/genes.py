"""The gene table behind ``geneId`` queries, loaded from a GTF or GFF3 (plain or gzipped) per assembly."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import delete

from genoshare.beacon.variants import canonical_assembly
from genoshare.errors import InvalidInput
from genoshare.store.beacon_tables import BeaconGene
from genoshare.store.db import Database

_GTF_NAME = re.compile(r'gene_name "([^"]+)"')
_GTF_ID = re.compile(r'gene_id "([^"]+)"')
_GFF_NAME = re.compile(r"(?:^|;)Name=([^;]+)")
_GFF_ID = re.compile(r"(?:^|;)(?:gene_id|ID)=(?:gene:)?([^;]+)")


def read_genes(path: Path) -> Iterator[tuple[str, str, str, int, int]]:
    """(symbol, gene id, contig, 0-based start, end) of each ``gene`` feature; GTF/GFF are 1-based inclusive."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt") as handle:
        for line in handle:
            if line.startswith("#"):
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) < 9 or fields[2] != "gene":
                continue
            attributes = fields[8]
            name = _GTF_NAME.search(attributes) or _GFF_NAME.search(attributes)
            ident = _GTF_ID.search(attributes) or _GFF_ID.search(attributes)
            if name is None:
                continue
            yield (
                name.group(1),
                ident.group(1) if ident else name.group(1),
                fields[0],
                int(fields[3]) - 1,
                int(fields[4]),
            )


def load_genes(database: Database, path: Path, assembly: str) -> int:
    """Replace the assembly's gene table; a symbol seen twice (PAR genes) keeps its first span."""
    assembly = canonical_assembly(assembly)
    rows: dict[str, BeaconGene] = {}
    for symbol, gene_id, contig, start, end in read_genes(path):
        rows.setdefault(
            symbol,
            BeaconGene(assembly_id=assembly, symbol=symbol, gene_id=gene_id, contig=contig, start=start, end=end),
        )
    if not rows:
        raise InvalidInput(f"{path.name}: no gene features with a gene name (GTF gene_name or GFF3 Name)")
    with database.session() as session:
        session.execute(delete(BeaconGene).where(BeaconGene.assembly_id == assembly))
        session.add_all(rows.values())
    return len(rows)
