"""In-process serving of the variant index.

Point queries are binary searches on the sorted `start` column held as numpy arrays (microseconds), not SQL:
FLOORS.md puts DuckDB's best in-memory point query at 0.64 ms, already most of the Beacon latency budget.
The Parquet files stay the storage and exchange layout (DuckDB/Spark read them directly for analytics).
Carrier bitmaps are kept as an Arrow binary column and only deserialised for the rows a query returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyroaring import BitMap

from genoshare.index.build import INDEX_FILE
from genoshare.index.schema import TYPE_QUERY_EXPANSION

PathLike = str | Path


@dataclass(frozen=True)
class VariantRow:
    """One ALT allele in one dataset; `carrier_count` is restricted to the allowed samples if given."""

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


# (dataset, contig's first row, contig's end row, longest variant span on the contig) -> candidate rows
_Candidates = Callable[["_Dataset", int, int, int], np.ndarray]


def _bases_match(pattern: str, bases: str) -> bool:
    """Beacon `N` wildcard: each N in the query matches any single base."""
    if "N" not in pattern:
        return pattern == bases
    return len(pattern) == len(bases) and all(p in ("N", b) for p, b in zip(pattern, bases, strict=True))


class _Dataset:
    def __init__(self, dataset_id: str, files: Sequence[Path]) -> None:
        table = pa.concat_tables(pq.read_table(f) for f in files).combine_chunks()
        starts = table.column("start").to_numpy()
        contigs = table.column("contig")
        if len(files) > 1 or not _is_sorted(contigs, starts):
            table = table.sort_by([("contig", "ascending"), ("start", "ascending")]).combine_chunks()
            starts = table.column("start").to_numpy()
            contigs = table.column("contig")
        self.dataset_id = dataset_id
        self.table = table.drop_columns(["carriers"])
        self.carriers = table.column("carriers").chunk(0) if table.num_rows else pa.array([], pa.binary())
        self._strings = {
            name: self.table.column(name).combine_chunks() for name in ("contig", "ref", "alt", "variant_type")
        }
        self._numbers = {
            name: self.table.column(name).to_numpy()
            for name in ("start", "end", "length", "ac", "an", "af", "carrier_count")
        }
        self.starts, self.ends, self.lengths = (self._numbers[n] for n in ("start", "end", "length"))
        self.blocks: dict[str, tuple[int, int, int]] = {}
        for contig, lo, hi in _contig_blocks(contigs):
            span = int((self.ends[lo:hi] - self.starts[lo:hi]).max())
            self.blocks[contig] = (lo, hi, span)

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
            **{name: values[row].as_py() for name, values in self._strings.items()},
            **{name: values[row].item() for name, values in self._numbers.items() if name != "carrier_count"},
            carrier_count=int(self._numbers["carrier_count"][row]) if count is None else count,
        )

    def column(self, name: str, rows: np.ndarray) -> list[object]:
        return self.table.column(name).take(pa.array(rows)).to_pylist()

    def bitmap(self, row: int) -> BitMap:
        return BitMap.deserialize(self.carriers[row].as_py())


def _is_sorted(contigs: pa.ChunkedArray, starts: np.ndarray) -> bool:
    blocks = list(_contig_blocks(contigs))
    if len({c for c, _, _ in blocks}) != len(blocks):
        return False
    return all(bool(np.all(np.diff(starts[lo:hi]) >= 0)) for _, lo, hi in blocks)


def _contig_blocks(contigs: pa.ChunkedArray) -> Iterable[tuple[str, int, int]]:
    """Runs of equal contig names as (name, first row, end row)."""
    runs = pc.run_end_encode(contigs.combine_chunks() if contigs.num_chunks else pa.array([], pa.string()))
    lo = 0
    for name, end in zip(runs.values.to_pylist(), runs.run_ends.to_pylist(), strict=True):
        yield name, lo, end
        lo = end


@dataclass(frozen=True)
class QueryResult:
    """Matching rows, ordered by (start, dataset, file order); bitmaps are only read when asked for."""

    index: VariantIndex
    hits: tuple[tuple[int, int], ...]  # (dataset position, row)

    @property
    def total(self) -> int:
        return len(self.hits)

    def rows(self, skip: int = 0, limit: int | None = None, allowed: BitMap | None = None) -> list[VariantRow]:
        page = self.hits[skip : None if limit is None else skip + limit]
        return self.index.rows(page, allowed)

    def carriers(self, allowed: BitMap | None = None) -> BitMap:
        """Union of carriers over all matches: "how many individuals have any of these variants"."""
        union = BitMap.union(*(self.index.datasets[d].bitmap(r) for d, r in self.hits)) if self.hits else BitMap()
        return union & allowed if allowed is not None else union

    def carrier_count(self, allowed: BitMap | None = None) -> int:
        return len(self.carriers(allowed))


class VariantIndex:
    """All datasets' variant indexes of a node, held in memory for Beacon queries.

    `datasets` maps a dataset id to its index directory, Parquet file, or several Parquet files
    (e.g. Spark part files); sample numbers are node-wide, so bitmaps of datasets can be combined.
    """

    def __init__(self, datasets: Mapping[str, PathLike | Sequence[PathLike]]) -> None:
        self.datasets = [_Dataset(dataset_id, _files(spec)) for dataset_id, spec in datasets.items()]

    def _select(self, dataset_ids: Iterable[str] | None) -> list[int]:
        if dataset_ids is None:
            return list(range(len(self.datasets)))
        wanted = set(dataset_ids)
        return [i for i, d in enumerate(self.datasets) if d.dataset_id in wanted]

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
        hits: list[tuple[int, int]] = []
        for d in self._select(datasets):
            ds = self.datasets[d]
            block = ds.block(reference_name)
            if block is None:
                continue
            lo, hi, _ = block
            first = lo + int(np.searchsorted(ds.starts[lo:hi], start, side="left"))
            last = lo + int(np.searchsorted(ds.starts[lo:hi], start, side="right"))
            for row in range(first, last):
                alt = ds.table.column("alt")[row].as_py()
                if not _bases_match(alternate_bases, alt):
                    continue
                if reference_bases is not None and not _bases_match(
                    reference_bases, ds.table.column("ref")[row].as_py()
                ):
                    continue
                hits.append((d, row))
        return QueryResult(self, tuple(hits))

    def range_query(
        self,
        reference_name: str,
        start: int,
        end: int,
        variant_type: str | None = None,
        alternate_bases: str | None = None,
        reference_bases: str | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        datasets: Iterable[str] | None = None,
    ) -> QueryResult:
        """Beacon range query: variants overlapping the 0-based half-open [start, end)."""

        def overlapping(ds: _Dataset, lo: int, hi: int, span: int) -> np.ndarray:
            first = lo + int(np.searchsorted(ds.starts[lo:hi], start - span, side="left"))
            last = lo + int(np.searchsorted(ds.starts[lo:hi], end, side="left"))
            return np.arange(first, last)[ds.ends[first:last] > start]

        return self._search(
            reference_name,
            overlapping,
            variant_type,
            alternate_bases,
            reference_bases,
            min_length,
            max_length,
            datasets,
        )

    def bracket_query(
        self,
        reference_name: str,
        start: tuple[int, int],
        end: tuple[int, int],
        variant_type: str | None = None,
        min_length: int | None = None,
        max_length: int | None = None,
        datasets: Iterable[str] | None = None,
    ) -> QueryResult:
        """Beacon bracket query: start in [start[0], start[1]] and end in [end[0], end[1]] (inclusive)."""

        def bracketed(ds: _Dataset, lo: int, hi: int, span: int) -> np.ndarray:
            first = lo + int(np.searchsorted(ds.starts[lo:hi], start[0], side="left"))
            last = lo + int(np.searchsorted(ds.starts[lo:hi], start[1], side="right"))
            ends = ds.ends[first:last]
            return np.arange(first, last)[(ends >= end[0]) & (ends <= end[1])]

        return self._search(reference_name, bracketed, variant_type, None, None, min_length, max_length, datasets)

    def _search(
        self,
        reference_name: str,
        candidates: _Candidates,
        variant_type: str | None,
        alternate_bases: str | None,
        reference_bases: str | None,
        min_length: int | None,
        max_length: int | None,
        datasets: Iterable[str] | None,
    ) -> QueryResult:
        found: list[tuple[int, np.ndarray]] = []
        for d in self._select(datasets):
            ds = self.datasets[d]
            block = ds.block(reference_name)
            if block is None:
                continue
            rows = candidates(ds, *block)
            if min_length is not None:
                rows = rows[ds.lengths[rows] >= min_length]
            if max_length is not None:
                rows = rows[ds.lengths[rows] <= max_length]
            for column, wanted in (("alt", alternate_bases), ("ref", reference_bases)):
                if wanted is not None and len(rows):
                    values = ds.column(column, rows)
                    rows = rows[np.array([_bases_match(wanted, v) for v in values], dtype=bool)]
            if variant_type is not None and len(rows):
                accepted = TYPE_QUERY_EXPANSION.get(variant_type, frozenset({variant_type}))
                rows = rows[np.array([t in accepted for t in ds.column("variant_type", rows)], dtype=bool)]
            found.append((d, rows))
        return QueryResult(self, _merge(self.datasets, found))


def _merge(datasets: list[_Dataset], found: list[tuple[int, np.ndarray]]) -> tuple[tuple[int, int], ...]:
    """Order hits by (start, dataset, file order); one dataset is already in that order."""
    found = [(d, rows) for d, rows in found if len(rows)]
    if not found:
        return ()
    ids = np.concatenate([np.full(len(rows), d) for d, rows in found])
    rows = np.concatenate([rows for _, rows in found])
    if len(found) > 1:
        starts = np.concatenate([datasets[d].starts[r] for d, r in found])
        order = np.lexsort((rows, ids, starts))
        ids, rows = ids[order], rows[order]
    return tuple(zip(ids.tolist(), rows.tolist(), strict=True))


def _files(spec: PathLike | Sequence[PathLike]) -> list[Path]:
    paths = [Path(spec)] if isinstance(spec, str | Path) else [Path(p) for p in spec]
    return [p / INDEX_FILE if p.is_dir() else p for p in paths]
