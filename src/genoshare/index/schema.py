"""The Parquet layout of the variant index, shared by the builder, the server and any bulk (Spark) writer.

One row per (site, ALT allele); rows sorted by (contig order of the source header, start). Coordinates are
0-based half-open, as Beacon v2 uses them. `carriers` is a portable-format Roaring bitmap (readable from
Java/Go/C) over node-wide sample numbers.
"""

from __future__ import annotations

import pyarrow as pa

FORMAT = "genoshare-variant-index/1"
METADATA_KEY = b"genoshare.variant_index"
ROW_GROUP_SIZE = 65_536

SCHEMA = pa.schema(
    [
        pa.field("contig", pa.string(), nullable=False),
        pa.field("start", pa.int64(), nullable=False),
        pa.field("end", pa.int64(), nullable=False),
        pa.field("ref", pa.string(), nullable=False),
        pa.field("alt", pa.string(), nullable=False),
        pa.field("variant_type", pa.string(), nullable=False),
        pa.field("length", pa.int64(), nullable=False),
        pa.field("ac", pa.int32(), nullable=False),
        pa.field("an", pa.int32(), nullable=False),
        pa.field("af", pa.float64(), nullable=False),
        pa.field("carrier_count", pa.int32(), nullable=False),
        pa.field("carriers", pa.binary(), nullable=False),
    ]
)

SYMBOLIC_TYPES = {"DEL": "DEL", "INS": "INS", "DUP": "DUP", "INV": "INV", "CNV": "CNV"}

# A query for INDEL also matches the more specific DEL and INS rows.
TYPE_QUERY_EXPANSION: dict[str, frozenset[str]] = {"INDEL": frozenset({"INDEL", "DEL", "INS"})}


def classify(ref: str, alt: str, start: int, end: int) -> tuple[str, int] | None:
    """Beacon `variantType` and length of one ALT allele; None for non-variants (`*`, `.`)."""
    if alt in ("*", ".", "<*>", "<NON_REF>"):
        return None
    if alt.startswith("<"):
        kind = alt[1:-1].split(":", 1)[0]
        return SYMBOLIC_TYPES.get(kind, "SV"), end - start
    if "[" in alt or "]" in alt:
        return "BND", 0
    n_ref, n_alt = len(ref), len(alt)
    if n_ref == n_alt:
        return ("SNP" if n_ref == 1 else "MNP"), n_ref
    if n_alt < n_ref and ref.startswith(alt):
        return "DEL", n_ref - n_alt
    if n_alt > n_ref and alt.startswith(ref):
        return "INS", n_alt - n_ref
    return "INDEL", abs(n_alt - n_ref)
