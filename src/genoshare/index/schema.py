"""The file layout of the variant index, shared by the builder, the server and any bulk (Spark) writer.

One row per (site, ALT allele); rows sorted by (contig order of the source header, start). Coordinates are
0-based half-open, as Beacon v2 uses them. `carriers` is a portable-format Roaring bitmap (readable from
Java/Go/C) over node-wide sample numbers.

The file is an uncompressed Arrow IPC file (Feather v2), ``variants.arrow``: a server memory-maps it and
reads a query's rows in place, without decoding anything (`serving` says why). Indexes written before
(``genoshare-variant-index/1``) are Parquet files, ``variants.parquet``; `serving` still reads them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

FORMAT = "genoshare-variant-index/2"
#: The file's own metadata (JSON: format, source, samples), in its schema.
METADATA_KEY = b"genoshare.variant_index"
#: In the file's footer: one row per record batch (`DIRECTORY`), an Arrow IPC stream of one batch.
DIRECTORY_KEY = b"genoshare.directory"
#: Rows per record batch: the unit a server locates through the directory and reads (memory-mapped: only
#: the pages a query touches; from an object store: one ranged GET of ~400 KB).
ROW_GROUP_SIZE = 4_096
#: A partitioned index (one file per region, `genoshare.index.spark`) is published by this JSON file
#: beside where `variants.arrow` would be: its part files in (contig order of the source header, start) order.
MANIFEST = "variants.json"

#: Where each record batch is: its contigs' and positions' bounds (what Parquet keeps as statistics), and
#: its rows' longest span (``end - start``), which bounds how far before a window an overlapping row starts.
DIRECTORY = pa.schema(
    [
        pa.field("contig_min", pa.string()),
        pa.field("contig_max", pa.string()),
        pa.field("start_min", pa.int64()),
        pa.field("start_max", pa.int64()),
        pa.field("end_min", pa.int64()),
        pa.field("end_max", pa.int64()),
        pa.field("span_max", pa.int64()),
    ]
)

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


class IndexWriter:
    """Writes an index file: rows sorted by (contig block, start) as record batches of `ROW_GROUP_SIZE` rows.

    A batch is what a server reads for a query, found by the file's directory (`DIRECTORY_KEY`): one holding
    the end of one contig and the start of the next would span both contigs' positions, and be read for
    queries on either, so a batch holds one contig. The directory is known only once every row is written,
    and an Arrow file's footer metadata is fixed when the file is opened: rows stream into an Arrow IPC
    stream beside ``path`` (memory stays flat in the number of rows), and closing copies its batches into
    ``path``, the directory in the footer (one sequential copy, memory-mapped).

    Used as a context manager: ``path`` is written when the block ends without an exception; with one, the
    staging stream is removed and ``path`` never appears.
    """

    def __init__(self, path: Path, metadata: str) -> None:
        self.path = path
        self.n_rows = 0
        self._schema = SCHEMA.with_metadata({METADATA_KEY: metadata.encode()})
        self._staging = path.with_name(path.name + ".stream")
        self._stream = ipc.new_stream(str(self._staging), self._schema)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self._contig: str | None = None
        self._directory: dict[str, list[object]] = {name: [] for name in DIRECTORY.names}

    def __enter__(self) -> IndexWriter:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        try:
            if kind is None:
                self.close()
        finally:
            if kind is not None or self._staging.exists():  # failed, in the block or in closing
                self._stream.close()
                self._staging.unlink(missing_ok=True)
                self.path.unlink(missing_ok=True)

    def add(self, rows: pa.RecordBatch) -> None:
        contigs = rows.column(0)
        if not len(contigs):
            return
        runs = pc.run_end_encode(contigs)
        lo = 0
        for name, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
            if name != self._contig:
                self._flush()
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
        """Write what is pending, then ``path``: the staged batches and, in the footer, the directory."""
        self._flush()
        self._stream.close()
        directory = pa.RecordBatch.from_pydict(self._directory, schema=DIRECTORY)
        sink = pa.BufferOutputStream()
        with ipc.new_stream(sink, DIRECTORY) as writer:
            writer.write_batch(directory)
        footer = {DIRECTORY_KEY: sink.getvalue().to_pybytes()}
        with (
            pa.memory_map(str(self._staging)) as staged,
            ipc.new_file(str(self.path), self._schema, metadata=footer) as out,
        ):
            for batch in ipc.open_stream(staged):
                out.write_batch(batch)
        self._staging.unlink()

    def _flush(self) -> None:
        """Write the pending rows (the last, shorter batch of a contig)."""
        if self._pending_rows:
            self._write(pa.Table.from_batches(self._pending, SCHEMA))
        self._pending, self._pending_rows = [], 0

    def _write(self, table: pa.Table) -> None:
        """Each batch with its directory entry; a server trusts a batch to be sorted by start: checked here."""
        for batch in table.combine_chunks().to_batches(max_chunksize=ROW_GROUP_SIZE):
            contig = pc.min_max(batch.column(0))
            starts, ends = batch.column(1).to_numpy(), batch.column(2).to_numpy()
            if np.any(starts[1:] < starts[:-1]):
                raise ValueError(f"index rows out of order on contig {contig['min'].as_py()} near {starts.min()}")
            bounds = (starts.min(), starts.max(), ends.min(), ends.max(), (ends - starts).max())
            entry = (contig["min"].as_py(), contig["max"].as_py(), *(int(value) for value in bounds))
            for name, value in zip(DIRECTORY.names, entry, strict=True):
                self._directory[name].append(value)
            self._stream.write_batch(batch)
            self.n_rows += batch.num_rows
