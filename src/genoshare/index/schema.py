"""The Parquet layout of the variant index, shared by the builder, the server and any bulk (Spark) writer.

One row per (site, ALT allele); rows sorted by (contig order of the source header, start). Coordinates are
0-based half-open, as Beacon v2 uses them. `carriers` is a portable-format Roaring bitmap (readable from
Java/Go/C) over node-wide sample numbers.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

FORMAT = "genoshare-variant-index/1"
METADATA_KEY = b"genoshare.variant_index"
#: Rows per row group: the unit a server reads for a query (~1.5 ms to read and decode one of 8,192 rows; one
#: of 65,536 took ~50 ms), located through the contig/start/end statistics of the file's footer.
ROW_GROUP_SIZE = 8_192
#: A partitioned index (one Parquet file per region, `genoshare.index.spark`) is published by this JSON file
#: beside where `variants.parquet` would be: its part files in (contig order of the source header, start) order.
MANIFEST = "variants.json"

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


def open_index_writer(path: Path, metadata: str) -> pq.ParquetWriter:
    """The Parquet writer of an index file: how the builder (and the scale benchmark's generator) write one.

    `metadata` is the JSON document stored under `METADATA_KEY` (format, source, samples). Rows go in
    row groups of `ROW_GROUP_SIZE`: the unit a server reads (`serving`), located by each row group's
    contig and start/end statistics, which the writer keeps.
    """
    return pq.ParquetWriter(
        path,
        SCHEMA.with_metadata({METADATA_KEY: metadata.encode()}),
        compression="zstd",
        use_dictionary=["contig", "ref", "alt", "variant_type"],
        sorting_columns=[pq.SortingColumn(0), pq.SortingColumn(1)],
        # Only what locates a row group: statistics of the carriers column (up to 4 KB of bitmap each) would
        # make the footer of a 10^8-row index ~200 MB instead of a few.
        write_statistics=["contig", "start", "end"],
    )


class RowGroupWriter:
    """Writes rows sorted by (contig block, start) as row groups of `ROW_GROUP_SIZE` rows, each of one contig.

    A row group is what a server reads for a query, found by its statistics: one holding the end of one
    contig and the start of the next would span both contigs' positions, and be read for queries on either.
    """

    def __init__(self, writer: pq.ParquetWriter) -> None:
        self._writer = writer
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._contig: str | None = None
        self.n_rows = 0

    def add(self, rows: pa.RecordBatch) -> None:
        contigs = rows.column(0)
        runs = pc.run_end_encode(contigs) if len(contigs) else None
        if runs is None:
            return
        lo = 0
        for name, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
            if name != self._contig:
                self.close()
                self._contig = name
            self._pending.append(rows.slice(lo, end - lo))
            self._pending_rows += end - lo
            lo = end
            if self._pending_rows >= ROW_GROUP_SIZE:
                table = pa.Table.from_batches(self._pending, SCHEMA)
                full = self._pending_rows - self._pending_rows % ROW_GROUP_SIZE
                self._write(table.slice(0, full))
                self._pending = table.slice(full).to_batches()
                self._pending_rows -= full

    def close(self) -> None:
        """Write what is pending (the last, shorter row group of a contig)."""
        if self._pending_rows:
            self._write(pa.Table.from_batches(self._pending, SCHEMA))
        self._pending, self._pending_rows = [], 0

    def _write(self, table: pa.Table) -> None:
        self._writer.write_table(table, row_group_size=ROW_GROUP_SIZE)
        self.n_rows += table.num_rows
