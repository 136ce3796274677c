"""In-process serving of the variant index.

Point queries are binary searches on the sorted `start` column held as numpy arrays (microseconds), not SQL:
DuckDB's best in-memory point query measured 0.64 ms here, already most of the Beacon latency budget.

Only the record batches a query touches are read. An index file (`schema`) is an uncompressed Arrow IPC
file whose footer holds a directory: each batch's contig and start/end bounds, kept as numpy arrays (~50
bytes a batch: ~1.3 MB for 10^8 rows). A query picks the batches those bounds allow and reads each in
place: a local file is memory-mapped, so a batch's columns are views of the file's pages (zero-copy: no
decoding, no allocation), a binary search on `start` touches a few pages of one column, and a hit's
alleles and carrier bitmap are slices of a few more. Batches are kept in a least-recently-used cache
bounded in bytes (``cache_bytes``); on a local file what it holds is views of mapped pages, which the
kernel may drop and read again, so a server's own (anonymous) memory is the directory plus what queries
build from the rows (bitmaps deserialised, run unions), whatever the index's size.

Why this layout and not Parquet's row groups, which it replaced: a cold point query on a 10^8-row Parquet
index cost ~2.5 ms of CPU decoding whole 8,192-row column chunks (zstd, dictionaries) into fresh buffers,
and its slowest 1 % ~20 ms more, spent by the kernel zeroing the fresh (transparent huge) pages of Arrow's
allocator for them; the parsed footer held ~10 KB a row group (~125 MB at 10^8) to locate them. Smaller
row groups grow that footer, and pyarrow reads no Parquet page index. An Arrow file needs neither: reads
are views, the footer is ~80 bytes a batch, and a cold point query costs ~0.5 ms of CPU, under 1 ms at
p99 (10^8 rows, docs/scale.md). It takes ~7x the disk of zstd Parquet (~96 bytes a row at 10^3 samples, a
third of them the bitmaps), the price of reading in place. On an object store (`StoredFile`) a batch is
one ranged GET of the whole batch, into the cache. Indexes published before (Parquet,
``genoshare-variant-index/1``) are still served, by reading their row groups as before, and the operator
is told once to rebuild them (``genoshare beacon-index``).

Carrier bitmaps are only deserialised for the rows a query returns. Counts restricted to allowed samples
stay vectorised: a row whose carrier count exceeds the number of the index's samples outside the allowed
set has an allowed carrier for sure, so only the few remaining rows (none when nobody is excluded) need
their bitmap read.
"""

from __future__ import annotations

import base64
import itertools
import json
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
from pyroaring import AbstractBitMap, BitMap, FrozenBitMap

from genoshare.index.build import INDEX_FILE, PARQUET_INDEX_FILE
from genoshare.index.schema import DIRECTORY_KEY, FORMAT, MANIFEST, METADATA_KEY, SCHEMA, TYPE_QUERY_EXPANSION

PathLike = str | Path

#: Record batches (or row groups) a `VariantIndex` keeps, in bytes (a batch of 4,096 rows is ~0.4 MB).
CACHE_BYTES = 256 * 1024 * 1024

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StoredFile:
    """An index file that is not on a local path: ``open`` gives a seekable handle (ranged reads of an object)."""

    name: str
    open: Callable[[], BinaryIO]


IndexSource = PathLike | StoredFile


@dataclass(frozen=True)
class VariantRow:
    """One ALT allele in one dataset; `carrier_count` is restricted to the allowed samples if given.

    The Beacon's hits are these rows too, with `carriers` (who in scope carries it) filled in for the
    record-level answer and `an` zeroed where a frequency would touch a withdrawn person.
    """

    dataset_id: str
    contig: str
    start: int
    end: int
    ref: str
    alt: str
    variant_type: str
    length: int
    ac: int
    an: int
    af: float
    carrier_count: int
    carriers: BitMap | None = None

    @property
    def internal_id(self) -> str:
        """Stable, public, and free of sample information: the allele itself."""
        return f"{self.contig}:{self.start}:{self.ref}:{self.alt}"


UNBOUNDED = (0, 2**62)
#: Up to this many rows, cells are read one by one rather than with a vectorised Arrow call.
_FEW = 16
#: Rows per precomputed carrier union (15,600 unions of ~1 KB for 1M variants of 1,000 samples).
RUN = 64


def _bases_match(pattern: str, bases: str) -> bool:
    """Beacon `N` wildcard: each N in the query matches any single base."""
    if "N" not in pattern:
        return pattern == bases
    return len(pattern) == len(bases) and all(p in ("N", b) for p, b in zip(pattern, bases, strict=True))


class _Dataset:
    """Rows of one dataset held in memory: a row group of an index file, or a whole (re-sorted) table."""

    def __init__(
        self,
        dataset_id: str,
        table: pa.Table,
        samples: BitMap | None,
        read: Callable[[list[str]], pa.Table],
        block: tuple[str, int] | None = None,
    ) -> None:
        """``table`` holds at least the row group's contig, start and end; ``read(columns)`` gives the others.

        The rest is read on first use, the allele columns together and the bitmaps apart: a point query
        whose start is not there reads only the positions (~4x less CPU than the whole row group), and one
        whose answer needs no bitmap (everyone in scope) never decodes the bitmaps (~20% of the rest).
        ``block``: the rows' one contig and their longest span (``end - start``), when the file's directory
        says so (an Arrow file's writer checked its batches sorted): nothing of the rows is read to know it.
        """
        self._read = read
        self._lock = threading.Lock()  # a cached row group is shared by the server's threads
        table = table.combine_chunks()
        if block is None and not _is_sorted(table.column("contig"), table.column("start").to_numpy()):
            # A writer other than the builder: sorting must carry every column (bitmaps included) along.
            rest = [name for name in SCHEMA.names if name not in table.column_names]
            if rest:
                table = _joined(table, read(rest))
            table = table.sort_by([("contig", "ascending"), ("start", "ascending")]).combine_chunks()
        self.dataset_id = dataset_id
        #: Bytes held (the LRU's measure): grows when the other columns, the bitmaps or a run union are read.
        self.nbytes = 0
        self._carriers: pa.Array | None = None
        if "carriers" in table.column_names:
            self._carriers = table.column("carriers").chunk(0) if table.num_rows else pa.array([], pa.binary())
            self.nbytes = self._carriers.get_total_buffer_size()
            table = table.drop_columns(["carriers"])
        self.table = table
        self._strings: dict[str, pa.Array] = {}
        self._numbers: dict[str, np.ndarray] = {}
        self.nbytes += table.get_total_buffer_size()
        self.starts, self.ends = self.number("start"), self.number("end")
        self.blocks: dict[str, tuple[int, int, int]] = {}
        if block is not None:
            self.blocks[block[0]] = (0, table.num_rows, block[1])
        for contig, lo, hi in _contig_blocks(table.column("contig")) if block is None else ():
            span = int((self.ends[lo:hi] - self.starts[lo:hi]).max())
            self.blocks[contig] = (lo, hi, span)
        # Without the builder's metadata (a bulk writer may leave it out) the union of these rows' carrier
        # sets stands in for the index's samples: samples that carry none of them cannot matter to the bounds.
        self.samples = samples if samples is not None else _union_of(self.carriers)
        self._run_unions: dict[int, FrozenBitMap] = {}

    def _complete(self) -> None:
        """Read the columns the positions did not bring (one read for all of them), once.

        Bytes counted as allocated (a reader's buffers outgrow their contents).
        """
        with self._lock:
            rest = [name for name in _ALL_BUT_CARRIERS if name not in self.table.column_names]
            if rest:
                loaded = self._read(rest).combine_chunks()
                self.table = _joined(self.table, loaded)
                self.nbytes += loaded.get_total_buffer_size()

    def number(self, name: str) -> np.ndarray:
        """A numeric column as a numpy view of its buffer, made on first use (of a mapped file: no copy)."""
        found = self._numbers.get(name)
        if found is None:
            if name not in self.table.column_names:
                self._complete()
            found = self._numbers[name] = _one_array(self.table.column(name)).to_numpy()
        return found

    def strings(self, name: str) -> pa.Array:
        found = self._strings.get(name)
        if found is None:
            if name not in self.table.column_names:
                self._complete()
            found = self._strings[name] = _one_array(self.table.column(name))
        return found

    @property
    def lengths(self) -> np.ndarray:
        return self.number("length")

    @property
    def carrier_counts(self) -> np.ndarray:
        return self.number("carrier_count")

    @property
    def acs(self) -> np.ndarray:
        return self.number("ac")

    @property
    def carriers(self) -> pa.Array:
        """The rows' carrier bitmaps (serialised), read on first use."""
        if self._carriers is None:
            loaded = _one_array(self._read(["carriers"]).column(0))
            self.nbytes += loaded.get_total_buffer_size()
            self._carriers = loaded
        return self._carriers

    def run_union(self, run: int) -> FrozenBitMap:
        """The union of carriers of rows [run * RUN, (run + 1) * RUN), computed on first use and kept."""
        union = self._run_unions.get(run)
        if union is None:
            values = self.carriers.slice(run * RUN, RUN).to_pylist()
            union = self._run_unions[run] = FrozenBitMap(BitMap.union(*(BitMap.deserialize(b) for b in values)))
            self.nbytes += 2 * len(union) + 64
        return union

    def union(self, rows: np.ndarray) -> BitMap:
        """Carriers of any of ``rows``: precomputed unions for the runs whose rows are all asked for.

        Rows of a run that are left out but carried by nobody do not change the union, so they do not
        stop its precomputed union from being used (``carried_within`` drops exactly such rows when
        nobody is excluded). A 100 kb window spans ~1,700 rows: ~30 runs and a few dozen rows at the edges
        instead of ~1,700 bitmaps to deserialise (~6 ms).
        """
        if len(rows) < 2 * RUN:
            return BitMap.union(*self.bitmaps(rows)) if len(rows) else BitMap()
        runs = rows // RUN
        first, last = int(runs.min()), int(runs.max())
        asked = np.bincount(runs - first, minlength=last - first + 1)
        # Rows of each run that are not asked for and do have carriers: runs with none are whole.
        span = np.arange(first * RUN, min((last + 1) * RUN, len(self.carrier_counts)))
        carried = np.bincount(span[self.carrier_counts[span] > 0] // RUN - first, minlength=last - first + 1)
        asked_carried = np.bincount(runs[self.carrier_counts[rows] > 0] - first, minlength=last - first + 1)
        whole = np.flatnonzero(carried == asked_carried) + first
        whole = whole[asked[whole - first] > 0]
        parts: list[AbstractBitMap] = [self.run_union(k) for k in whole.tolist()]
        loose = rows[~np.isin(runs, whole)]
        parts.extend(self.bitmaps(loose))
        # Called on an empty BitMap: BitMap.union(*parts) has the class of parts[0], often a frozen run union.
        return BitMap().union(*parts)

    def block(self, reference_name: str) -> tuple[int, int, int] | None:
        for name in (reference_name, reference_name.removeprefix("chr"), "chr" + reference_name):
            if name in self.blocks:
                return self.blocks[name]
        return None

    def row(self, row: int, allowed: BitMap | None) -> VariantRow:
        """Plain Python values from numpy/Arrow arrays: ~1 us a cell instead of ~5 via ChunkedArray."""
        count = self.bitmap(row).intersection_cardinality(allowed) if allowed is not None else None
        return VariantRow(
            dataset_id=self.dataset_id,
            **{name: self.strings(name)[row].as_py() for name in _STRINGS},
            **{name: self.number(name)[row].item() for name in _NUMBERS},
            carrier_count=int(self.number("carrier_count")[row]) if count is None else count,
        )

    def column(self, name: str, rows: np.ndarray) -> list[object]:
        if len(rows) <= _FEW:  # a point query: Arrow's take costs ~50 us a call, a scalar read ~1 us
            values = self.strings(name)
            return [values[row].as_py() for row in rows.tolist()]
        return self.strings(name).take(pa.array(rows)).to_pylist()

    def bitmap(self, row: int) -> BitMap:
        return BitMap.deserialize(self.carriers[row].as_py())

    def bitmaps(self, rows: np.ndarray) -> list[BitMap]:
        if len(rows) <= _FEW:
            return [BitMap.deserialize(self.carriers[row].as_py()) for row in rows.tolist()]
        return [BitMap.deserialize(b) for b in self.carriers.take(pa.array(rows)).to_pylist()]


def _one_array(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array; its only chunk as it is (``combine_chunks`` would copy a mapped file's view)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def _joined(table: pa.Table, more: pa.Table) -> pa.Table:
    """``table`` with ``more``'s columns (the same rows) appended."""
    for field, column in zip(more.schema, more.columns, strict=True):
        table = table.append_column(field, column)
    return table


def _union_of(carriers: pa.Array) -> BitMap:
    values = carriers.to_pylist()
    return BitMap.union(*(BitMap.deserialize(b) for b in values)) if values else BitMap()


def _file_samples(metadata: Mapping[bytes, bytes] | None) -> BitMap | None:
    """The index's sample numbers from the builder's file metadata; None if a bulk writer left it out."""
    if not metadata or METADATA_KEY not in metadata:
        return None
    return BitMap.deserialize(base64.b64decode(json.loads(metadata[METADATA_KEY])["samples"]))


def _is_sorted(contigs: pa.ChunkedArray, starts: np.ndarray) -> bool:
    blocks = list(_contig_blocks(contigs))
    if len({c for c, _, _ in blocks}) != len(blocks):
        return False
    return all(bool(np.all(np.diff(starts[lo:hi]) >= 0)) for _, lo, hi in blocks)


def _contig_blocks(contigs: pa.ChunkedArray) -> Iterable[tuple[str, int, int]]:
    """Runs of equal contig names as (name, first row, end row)."""
    runs = pc.run_end_encode(_one_array(contigs) if contigs.num_chunks else pa.array([], pa.string()))
    lo = 0
    for name, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        yield name, lo, end
        lo = end


@dataclass(frozen=True)
class QueryResult:
    """Matching rows, ordered by (start, dataset, file order); bitmaps are only read when asked for.

    `datasets[i]` is the position (in `index.datasets`) and `positions[i]` the row of hit `i`.
    """

    index: VariantIndex
    datasets: np.ndarray
    positions: np.ndarray

    @property
    def total(self) -> int:
        return len(self.positions)

    def _page(self, skip: int, limit: int | None) -> list[tuple[int, int]]:
        end = None if limit is None else skip + limit
        return list(zip(self.datasets[skip:end].tolist(), self.positions[skip:end].tolist(), strict=True))

    def rows(self, skip: int = 0, limit: int | None = None, allowed: BitMap | None = None) -> list[VariantRow]:
        return self.index.rows(self._page(skip, limit), allowed)

    def bitmaps(self, skip: int = 0, limit: int | None = None) -> list[BitMap]:
        """Each hit's carriers (all samples of the index), for the hits of one page."""
        return [self.index.datasets[d].bitmap(r) for d, r in self._page(skip, limit)]

    def _groups(self) -> Iterable[tuple[_Dataset, np.ndarray]]:
        if len(self.index.datasets) == 1:  # the Beacon serves one dataset per index: no grouping to do
            if len(self.positions):
                yield self.index.datasets[0], self.positions
            return
        for d in np.unique(self.datasets).tolist():
            yield self.index.datasets[d], self.positions[self.datasets == d]

    def carriers(self, allowed: BitMap | None = None) -> BitMap:
        """Union of carriers over all matches: "how many individuals have any of these variants"."""
        unions = [ds.union(rows) for ds, rows in self._groups()]
        union = BitMap.union(*unions) if unions else BitMap()
        return union & allowed if allowed is not None else union

    def carrier_count(self, allowed: BitMap | None = None) -> int:
        return len(self.carriers(allowed))

    def carried_within(self, allowed: BitMap) -> QueryResult:
        """The hits with at least one carrier in `allowed`, reading only bitmaps the counts cannot settle."""
        keep = np.ones(self.total, dtype=bool)
        for d in np.unique(self.datasets).tolist() if len(self.index.datasets) > 1 else [0] * bool(self.total):
            ds = self.index.datasets[d]
            mine = np.flatnonzero(self.datasets == d) if len(self.index.datasets) > 1 else np.arange(self.total)
            rows = self.positions[mine]
            outside = len(ds.samples) - ds.samples.intersection_cardinality(allowed)
            unsure = np.flatnonzero(ds.carrier_counts[rows] <= outside)
            if len(unsure):
                seen = [b.intersection_cardinality(allowed) > 0 for b in ds.bitmaps(rows[unsure])]
                keep[mine[unsure]] = np.array(seen, dtype=bool)
        return QueryResult(self.index, self.datasets[keep], self.positions[keep])

    def allele_count(self, allowed: BitMap) -> int:
        """Copies of the matching alleles among `allowed` samples: exact from `ac` where no carrier is left out.

        The index stores who carries an allele, not how many copies each holds, so for a hit with some
        carriers outside `allowed` the count is the carriers inside (one copy each): a lower bound, which
        makes a minimum-count threshold or a privacy budget err on the side of the carriers.
        """
        total = 0
        for ds, rows in self._groups():
            outside = len(ds.samples) - ds.samples.intersection_cardinality(allowed)
            if outside == 0:
                total += int(ds.acs[rows].sum())
                continue
            for row, bitmap in zip(rows.tolist(), ds.bitmaps(rows), strict=True):
                inside = bitmap.intersection_cardinality(allowed)
                total += int(ds.acs[row]) if inside == len(bitmap) else inside
        return total


_LOW, _HIGH = np.iinfo(np.int64).min, np.iinfo(np.int64).max
#: Read as dictionaries: few distinct values (not decoded into a string each), compared only as values.
#: REF and ALT too: mostly single bases, they decode ~2.5x faster so (half of a point query's second read).
_AS_DICTIONARY = ["variant_type", "ref", "alt"]
_ALL_BUT_CARRIERS = [field.name for field in SCHEMA if field.name != "carriers"]
#: Read first from a row group: enough to find the rows a query asks for (and, most often, that there are none).
_POSITIONS = ["contig", "start", "end"]
_STRINGS = ("contig", "ref", "alt", "variant_type")
#: The numeric columns of a `VariantRow`, but its carrier count (which may be restricted to allowed samples).
_NUMBERS = ("start", "end", "length", "ac", "an", "af")


Bounds = tuple[str | None, str | None, int, int, int, int]
#: One contig and its rows' longest span (what ``_Dataset`` would otherwise work out from the rows).
Block = tuple[str, int]


class _ArrowFile:
    """One Arrow file of an index (``genoshare-variant-index/2``): its directory, read once, and its batches."""

    def __init__(self, dataset_id: str, source: Path | StoredFile) -> None:
        self.dataset_id = dataset_id
        self.name = source.name if isinstance(source, StoredFile) else str(source)
        # Memory-mapped, a batch's columns are views of the file: nothing decoded, nothing allocated. Over
        # an object store, a batch is read whole by one ranged GET (and kept by the cache).
        handle = (
            pa.PythonFile(source.open(), mode="r") if isinstance(source, StoredFile) else pa.memory_map(str(source))
        )
        self._file = ipc.open_file(handle)
        metadata = self._file.schema.metadata or {}
        written = json.loads(metadata[METADATA_KEY]).get("format") if METADATA_KEY in metadata else FORMAT
        if written != FORMAT:  # another layout's rows would be misread, never answered wrongly
            raise ValueError(f"{self.name}: a {written} index, not {FORMAT}: rebuild it with `genoshare beacon-index`")
        self.samples = _file_samples(metadata)
        self.first: list[str] | None = None  # every column at once: views, or one GET
        self._lock = threading.Lock()  # one handle: a remote one is a seek and a read, not thread-safe
        footer = self._file.metadata or {}
        if DIRECTORY_KEY not in footer:
            raise ValueError(f"{self.name}: not a variant index (its footer has no directory)")
        directory = ipc.open_stream(footer[DIRECTORY_KEY]).read_all()
        if directory.num_rows != self._file.num_record_batches:
            raise ValueError(f"{self.name}: its directory does not match its record batches")
        self._directory = directory
        lows, highs, spans = (directory.column(name).to_pylist() for name in ("contig_min", "contig_max", "span_max"))
        self._blocks = [
            (low, span) if low == high else None for low, high, span in zip(lows, highs, spans, strict=True)
        ]

    def statistics(self) -> list[Bounds]:
        """Per batch: contig min and max, start min and max, end min and max, from the footer's directory."""
        columns = [self._directory.column(name).to_pylist() for name in self._directory.column_names[:6]]
        return list(zip(*columns, strict=True))

    def block(self, group: int) -> Block | None:
        """The batch's one contig and longest span, from the directory (the writer checked the batch sorted)."""
        return self._blocks[group]

    def read(self, group: int, columns: list[str] | None = None) -> pa.Table:
        with self._lock:
            batch = self._file.get_batch(group)
        table = pa.Table.from_batches([batch])
        return table if columns is None else table.select(columns)


class _ParquetFile:
    """One Parquet file of an index published before the Arrow layout: its footer, read once, and its row groups.

    Served as before (a row group decoded on first use), and slower than its rebuilt Arrow file would be:
    opening one says so in the log, with the command that rebuilds it.
    """

    def __init__(self, dataset_id: str, source: Path | StoredFile) -> None:
        self.dataset_id = dataset_id
        if isinstance(source, StoredFile):
            self.name = source.name
            # pre_buffer: a row group's column chunks are fetched as one coalesced ranged read, not twelve.
            handle = pa.PythonFile(source.open(), mode="r")
            self.parquet = pq.ParquetFile(handle, pre_buffer=True, read_dictionary=_AS_DICTIONARY)
            # A ranged GET costs more than decoding: the allele columns come with the positions, one read.
            self.first: list[str] | None = _ALL_BUT_CARRIERS
        else:
            self.name = str(source)
            # Not memory-mapped: pages a process maps count in its RSS (up to the whole file over time);
            # read into Arrow buffers, a row group's bytes live as long as the cache keeps it.
            self.parquet = pq.ParquetFile(source, read_dictionary=_AS_DICTIONARY)
            self.first = _POSITIONS
        self.samples = _file_samples(self.parquet.schema_arrow.metadata)
        self._lock = threading.Lock()  # one handle: a remote one is a seek and a read, not thread-safe
        _log.warning(
            "Beacon index %s (dataset %s) is in the Parquet layout of an older genoshare: served, with slower"
            " cold queries; rebuild it with `genoshare beacon-index %s`",
            self.name,
            dataset_id,
            dataset_id,
        )

    def statistics(self) -> list[Bounds]:
        """Per row group: contig min and max, start min and max, end min and max (unbounded where not written)."""
        metadata = self.parquet.metadata
        names = metadata.schema.names
        columns = [names.index(name) for name in ("contig", "start", "end")]
        found = []
        for group in range(metadata.num_row_groups):
            chunks = [metadata.row_group(group).column(c).statistics for c in columns]
            have = [stats is not None and stats.has_min_max for stats in chunks]
            contig = (chunks[0].min, chunks[0].max) if have[0] else (None, None)
            starts = (chunks[1].min, chunks[1].max) if have[1] else (_LOW, _HIGH)
            ends = (chunks[2].min, chunks[2].max) if have[2] else (_LOW, _HIGH)
            found.append((*contig, *starts, *ends))
        return found

    def read(self, group: int, columns: list[str] | None = None) -> pa.Table:
        with self._lock:
            return self.parquet.read_row_group(group, columns=columns)

    def block(self, group: int) -> Block | None:
        """Unknown: statistics do not say whether a row group is sorted, nor its span."""
        return None


_IndexFile = _ArrowFile | _ParquetFile


def _open_file(dataset_id: str, source: Path | StoredFile) -> _IndexFile:
    """The reader of an index file, by its name: ``.parquet`` for an index written before the Arrow layout."""
    if source.name.endswith(".parquet"):
        return _ParquetFile(dataset_id, source)
    return _ArrowFile(dataset_id, source)


#: Loads between two exact sums of what the cache holds (between them, it adds each load's size).
_RECOUNT_EVERY = 64


class BatchCache:
    """Record batches (or row groups) kept between queries, least recently used first out, bounded in bytes.

    One can serve every index of a process (the Beacon's catalog shares one), so the bound is the process's,
    however many indexes it serves. Sizes are the batches' buffers: views of a memory-mapped file count
    though the kernel holds their pages, so on local disk the bound is loose and the process's own memory
    far below it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.cached_bytes = 0
        self._entries: OrderedDict[tuple[int, int], _Dataset] = OrderedDict()
        self._lock = threading.Lock()
        self._added = 0

    def get(self, key: tuple[int, int]) -> _Dataset | None:
        with self._lock:
            ds = self._entries.get(key)
            if ds is not None:
                self._entries.move_to_end(key)
            return ds

    def add(self, key: tuple[int, int], ds: _Dataset) -> _Dataset:
        """Keep ``ds`` (or the one another thread kept first) and evict down to the limit."""
        with self._lock:
            kept = self._entries.setdefault(key, ds)
            self._added += 1
            if kept is ds:
                self.cached_bytes += ds.nbytes
            if self.cached_bytes > self.limit or self._added % _RECOUNT_EVERY == 0:
                # Summed afresh: a cached group grows when its bitmaps or run unions are first read.
                self.cached_bytes = sum(cached.nbytes for cached in self._entries.values())
            while self.cached_bytes > self.limit and len(self._entries) > 1:
                _, evicted = self._entries.popitem(last=False)
                self.cached_bytes -= evicted.nbytes
            return kept

    def held(self, owner: int) -> int:
        with self._lock:
            return sum(1 for key in self._entries if key[0] == owner)

    def drop(self, owner: int) -> None:
        with self._lock:
            for key in [key for key in self._entries if key[0] == owner]:
                self.cached_bytes -= self._entries.pop(key).nbytes


_owners = itertools.count()


class _RowGroups(Sequence[_Dataset]):
    """Every row group (or batch) of an index's files, loaded on access and kept in a `BatchCache`.

    ``QueryResult`` names its hits by row-group position here; a group evicted between a query and the
    reading of its rows is read again, and answers the same.
    """

    def __init__(self, cache: BatchCache) -> None:
        self.files: list[_IndexFile] = []
        self.where: list[tuple[int, int]] = []  # (file, row group) of each position
        self.cache = cache
        self.loads = 0
        self._owner = next(_owners)

    @property
    def cached_bytes(self) -> int:
        """What the cache holds, of every index that shares it."""
        return self.cache.cached_bytes

    def __len__(self) -> int:
        return len(self.where)

    def __getitem__(self, position: int) -> _Dataset:  # type: ignore[override]
        ds = self.cache.get((self._owner, position))
        if ds is not None:
            return ds
        file, group = self.where[position]
        index_file = self.files[file]
        rows = index_file.read(group, index_file.first)
        block = index_file.block(group)
        ds = _Dataset(index_file.dataset_id, rows, index_file.samples, partial(index_file.read, group), block)
        self.loads += 1
        return self.cache.add((self._owner, position), ds)

    def loaded(self) -> int:
        return self.cache.held(self._owner)

    def clear(self) -> None:
        """Drop this index's cached row groups: the next query reads from the files (benchmarks of cold reads)."""
        self.cache.drop(self._owner)


def _may_hold(low: str | None, high: str | None, names: set[str]) -> bool:
    """Whether a row group whose contig statistics are [low, high] may hold one of ``names``."""
    return low is None or high is None or any(low <= name <= high for name in names)


class VariantIndex:
    """All datasets' variant indexes of a node, for Beacon queries; only the row groups asked for are loaded.

    `datasets` maps a dataset id to its index directory, Parquet file, several Parquet files (e.g. the part
    files of a partitioned build) or files on an object store (`StoredFile`); sample numbers are node-wide,
    so bitmaps of datasets can be combined. ``datasets[i]`` is the i-th row group over all of them.
    """

    def __init__(
        self,
        datasets: Mapping[str, IndexSource | Sequence[IndexSource]],
        cache_bytes: int | BatchCache = CACHE_BYTES,
    ) -> None:
        """``cache_bytes``: a cache of its own of that many bytes, or one shared with other indexes."""
        cache = cache_bytes if isinstance(cache_bytes, BatchCache) else BatchCache(cache_bytes)
        self.datasets = _RowGroups(cache)
        dataset_of: list[str] = []
        stats: list[Bounds] = []
        for dataset_id, spec in datasets.items():
            for source in _files(spec):
                index_file = _open_file(dataset_id, source)
                groups = index_file.statistics()
                self.datasets.where.extend((len(self.datasets.files), g) for g in range(len(groups)))
                self.datasets.files.append(index_file)
                dataset_of.extend([dataset_id] * len(groups))
                stats.extend(groups)
        self._dataset_of = np.array(dataset_of, dtype=object)
        # Contig bounds as Python strings (compared like Parquet's byte-wise statistics for ASCII names).
        self._contig_min = [row[0] for row in stats]
        self._contig_max = [row[1] for row in stats]
        numbers = np.array([row[2:] for row in stats], np.int64).reshape(-1, 4)
        self._start_min, self._start_max, self._end_min, self._end_max = numbers.T
        # The positions of each contig's batches (one contig each), and of those that may hold several:
        # a query's contig picks its few thousand at most before any position is compared.
        by_contig: dict[str, list[int]] = {}
        mixed: list[int] = []
        for position, (low, high) in enumerate(zip(self._contig_min, self._contig_max, strict=True)):
            if low is not None and low == high:
                by_contig.setdefault(low, []).append(position)
            else:
                mixed.append(position)
        self._by_contig = {name: np.array(found, np.int64) for name, found in by_contig.items()}
        self._mixed = np.array(mixed, np.int64)

    @property
    def samples(self) -> BitMap:
        """Every sample number of the index (from the files' metadata; without it, read from the rows)."""
        found = BitMap()
        for number, index_file in enumerate(self.datasets.files):
            if index_file.samples is not None:
                found |= index_file.samples
            else:
                for position, (file, _) in enumerate(self.datasets.where):
                    if file == number:
                        found |= self.datasets[position].samples
        return found

    def _select(
        self,
        dataset_ids: Iterable[str] | None,
        reference_name: str | None,
        start: tuple[int, int],
        end: tuple[int, int],
        overlap: tuple[int, int] | None,
    ) -> list[int]:
        """The row groups whose statistics allow a row meeting the positional constraints: the only ones read."""
        if reference_name is None:
            positions = np.arange(len(self.datasets))
        else:
            names = {reference_name, reference_name.removeprefix("chr"), "chr" + reference_name}
            mixed = [p for p in self._mixed.tolist() if _may_hold(self._contig_min[p], self._contig_max[p], names)]
            found = [self._by_contig[name] for name in names if name in self._by_contig]
            positions = np.sort(np.concatenate([np.array(mixed, np.int64), *found]))
        keep = (self._start_max[positions] >= start[0]) & (self._start_min[positions] <= start[1])
        keep &= (self._end_max[positions] >= end[0]) & (self._end_min[positions] <= end[1])
        if overlap is not None:
            keep &= (self._start_min[positions] < overlap[1]) & (self._end_max[positions] > overlap[0])
        if dataset_ids is not None:
            keep &= np.isin(self._dataset_of[positions], list(set(dataset_ids)))
        selected: list[int] = positions[keep].tolist()
        return selected

    def rows(self, hits: Sequence[tuple[int, int]], allowed: BitMap | None = None) -> list[VariantRow]:
        return [self.datasets[d].row(r, allowed) for d, r in hits]

    def sequence_query(
        self,
        reference_name: str,
        start: int,
        alternate_bases: str,
        reference_bases: str | None = None,
        datasets: Iterable[str] | None = None,
    ) -> QueryResult:
        """Beacon sequence query: the allele starting at 0-based `start`; `N` is a single-base wildcard."""
        return self.search(
            reference_name,
            start=(start, start),
            alternate_bases=alternate_bases,
            reference_bases=reference_bases,
            datasets=datasets,
        )

    def range_query(
        self,
        reference_name: str,
        start: int,
        end: int,
        variant_type: str | Collection[str] | None = None,
        alternate_bases: str | None = None,
        reference_bases: str | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        datasets: Iterable[str] | None = None,
    ) -> QueryResult:
        """Beacon range query: variants overlapping the 0-based half-open [start, end)."""
        return self.search(
            reference_name,
            overlap=(start, end),
            variant_type=variant_type,
            alternate_bases=alternate_bases,
            reference_bases=reference_bases,
            min_length=min_length,
            max_length=max_length,
            datasets=datasets,
        )

    def bracket_query(
        self,
        reference_name: str,
        start: tuple[int, int],
        end: tuple[int, int],
        variant_type: str | Collection[str] | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        datasets: Iterable[str] | None = None,
    ) -> QueryResult:
        """Beacon bracket query: start in [start[0], start[1]] and end in [end[0], end[1]] (inclusive)."""
        return self.search(
            reference_name,
            start=start,
            end=end,
            variant_type=variant_type,
            min_length=min_length,
            max_length=max_length,
            datasets=datasets,
        )

    def search(
        self,
        reference_name: str | None,
        *,
        start: tuple[int, int] = UNBOUNDED,
        end: tuple[int, int] = UNBOUNDED,
        overlap: tuple[int, int] | None = None,
        variant_type: str | Collection[str] | None = None,
        alternate_bases: str | None = None,
        reference_bases: str | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        datasets: Iterable[str] | None = None,
    ) -> QueryResult:
        """Every constraint at once; the Beacon query kinds are special cases.

        Start and end within inclusive bounds, overlapping the half-open `overlap`, and the allele filters.
        No `reference_name`: every contig. A string `variant_type` is expanded (INDEL also matches DEL and
        INS); a collection is taken as is.
        """
        if isinstance(variant_type, str):
            variant_type = TYPE_QUERY_EXPANSION.get(variant_type, frozenset({variant_type}))
        found: list[tuple[int, np.ndarray]] = []
        for d in self._select(datasets, reference_name, start, end, overlap):
            ds = self.datasets[d]
            if reference_name is None:
                blocks = list(ds.blocks.values())
            else:
                block = ds.block(reference_name)
                blocks = [] if block is None else [block]
            for lo, hi, span in blocks:
                rows = _candidates(ds, lo, hi, span, start, end, overlap)
                if min_length is not None:
                    rows = rows[ds.lengths[rows] >= min_length]
                if max_length is not None:
                    rows = rows[ds.lengths[rows] <= max_length]
                for column, wanted in (("alt", alternate_bases), ("ref", reference_bases)):
                    if wanted is not None and len(rows):
                        values = ds.column(column, rows)
                        rows = rows[np.array([_bases_match(wanted, str(v)) for v in values], dtype=np.bool_)]
                if variant_type is not None and len(rows):
                    kinds = ds.column("variant_type", rows)
                    rows = rows[np.array([t in variant_type for t in kinds], dtype=np.bool_)]
                found.append((d, rows))
        return _merge(self, found, by_start=reference_name is not None)


def _candidates(
    ds: _Dataset,
    lo: int,
    hi: int,
    span: int,
    start: tuple[int, int],
    end: tuple[int, int],
    overlap: tuple[int, int] | None,
) -> np.ndarray:
    """Rows of one contig block meeting the positional constraints: a binary search on `start`, then ends."""
    first, last = start
    if overlap is not None:
        if overlap[1] <= overlap[0]:
            return np.arange(0)
        first, last = max(first, overlap[0] - span), min(last, overlap[1] - 1)
    if first > last:
        return np.arange(0)
    a = lo + int(np.searchsorted(ds.starts[lo:hi], first, side="left"))
    b = lo + int(np.searchsorted(ds.starts[lo:hi], last, side="right"))
    ends = ds.ends[a:b]
    keep = (ends >= end[0]) & (ends <= end[1])
    if overlap is not None:
        keep &= ends > overlap[0]
    return np.arange(a, b)[keep]


def _merge(index: VariantIndex, found: list[tuple[int, np.ndarray]], by_start: bool) -> QueryResult:
    """Order hits on one contig by (start, dataset, file order); hits on every contig stay in file order.

    One dataset's block is already in (start, file order).
    """
    found = [(d, rows) for d, rows in found if len(rows)]
    if not found:
        return QueryResult(index, np.arange(0), np.arange(0))
    ids = np.concatenate([np.full(len(rows), d) for d, rows in found])
    rows = np.concatenate([rows for _, rows in found])
    if by_start and len(found) > 1:
        starts = np.concatenate([index.datasets[d].starts[r] for d, r in found])
        order = np.lexsort((rows, ids, starts))
        ids, rows = ids[order], rows[order]
    return QueryResult(index, ids, rows)


def _files(spec: IndexSource | Sequence[IndexSource]) -> list[Path | StoredFile]:
    sources = [spec] if isinstance(spec, str | Path | StoredFile) else list(spec)
    found: list[Path | StoredFile] = []
    for source in sources:
        if isinstance(source, StoredFile):
            found.append(source)
        else:
            path = Path(source)
            found.extend(published_files(path) if path.is_dir() else [path])
    return found


def published_files(directory: Path) -> list[Path]:
    """An index directory's files: the parts its manifest names, in order (a partitioned build), or the one file."""
    manifest = directory / MANIFEST
    if manifest.is_file():
        return [directory / part for part in json.loads(manifest.read_text())["parts"]]
    if not (directory / INDEX_FILE).exists() and (directory / PARQUET_INDEX_FILE).exists():
        return [directory / PARQUET_INDEX_FILE]  # published before the Arrow layout
    return [directory / INDEX_FILE]
