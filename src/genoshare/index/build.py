"""Build the columnar variant index from a multi-sample VCF/BCF.

Memory stays flat in the input size: records stream through cyvcf2 and leave as 64k-row Parquet row
groups. We open the input file descriptor ourselves and hand it to htslib: it shares the file offset, so
progress can report input bytes consumed without wrapping htslib's reads.
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import cyvcf2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyroaring import BitMap

from genoshare.index.schema import FORMAT, METADATA_KEY, ROW_GROUP_SIZE, SCHEMA, classify

Progress = Callable[[int, int], None]

INDEX_FILE = "variants.parquet"
_PROGRESS_EVERY = 10_000
_BLOCK = 1024


@dataclass(frozen=True)
class IndexSummary:
    path: Path
    n_records: int
    n_rows: int
    n_samples: int
    contigs: tuple[str, ...]
    bytes_read: int
    seconds: float


@dataclass
class _Batch:
    columns: dict[str, list[object]] = field(default_factory=lambda: {f.name: [] for f in SCHEMA})

    def __len__(self) -> int:
        return len(self.columns["start"])

    def table(self) -> pa.Table:
        return pa.table(self.columns, schema=SCHEMA)


def _sample_number_array(samples: list[str], sample_numbers: Mapping[str, int] | None) -> np.ndarray:
    if sample_numbers is None:
        return np.arange(len(samples), dtype=np.uint32)
    missing = [s for s in samples if s not in sample_numbers]
    if missing:
        raise ValueError(f"{len(missing)} VCF samples have no sample number, e.g. {missing[:3]}")
    numbers = np.array([sample_numbers[s] for s in samples], dtype=np.int64)
    if numbers.min(initial=0) < 0 or numbers.max(initial=0) >= 2**32:
        raise ValueError("sample numbers must fit in uint32")
    if len(np.unique(numbers)) != len(numbers):
        raise ValueError("sample numbers must be unique")
    return numbers.astype(np.uint32)


class _RecordBlock:
    """Genotypes of up to `_BLOCK` records with the same ploidy, so allele counting runs once per block.

    Per-record numpy calls on 1,000-sample arrays cost more than htslib's parsing; one vectorised pass over
    a (records x samples x ploidy) block amortises them.
    """

    def __init__(self, numbers: np.ndarray) -> None:
        self._numbers = numbers
        self._calls: np.ndarray | None = None
        self._sites: list[tuple[str, int, int, str, list[str]]] = []

    def add(self, variant: cyvcf2.Variant, rows: _Batch) -> None:
        genotypes = variant.genotype.array()
        if self._calls is not None and self._calls.shape[1:] != genotypes.shape:
            self.flush(rows)
        if self._calls is None:
            self._calls = np.empty((_BLOCK, *genotypes.shape), dtype=genotypes.dtype)
        self._calls[len(self._sites)] = genotypes
        self._sites.append((variant.CHROM, variant.start, variant.end, variant.REF, variant.ALT))
        if len(self._sites) == _BLOCK:
            self.flush(rows)

    def flush(self, rows: _Batch) -> None:
        """Append one row per ALT allele of the buffered records, in record order."""
        if not self._sites:
            return
        assert self._calls is not None
        calls = self._calls[: len(self._sites), :, :-1]  # last column is the phase flag
        if (calls < 0).any():  # missing calls or mixed ploidy: the rare, slower path
            an = np.count_nonzero(calls >= 0, axis=(1, 2)).tolist()
        else:
            an = [calls.shape[1] * calls.shape[2]] * len(self._sites)
        max_alts = max(len(site[4]) for site in self._sites)
        per_allele = [self._allele_stats(calls, allele) for allele in range(1, max_alts + 1)]
        cols = rows.columns
        for i, (contig, start, end, ref, alts) in enumerate(self._sites):
            for allele, alt in enumerate(alts, start=1):
                kind = classify(ref, alt, start, end)
                if kind is None:
                    continue
                ac, carriers = per_allele[allele - 1]
                members = carriers[i]
                cols["contig"].append(contig)
                cols["start"].append(start)
                cols["end"].append(end)
                cols["ref"].append(ref)
                cols["alt"].append(alt)
                cols["variant_type"].append(kind[0])
                cols["length"].append(kind[1])
                cols["ac"].append(ac[i])
                cols["an"].append(an[i])
                cols["af"].append(ac[i] / an[i] if an[i] else 0.0)
                cols["carrier_count"].append(len(members))
                cols["carriers"].append(BitMap(members).serialize())
        self._sites = []
        self._calls = None

    def _allele_stats(self, calls: np.ndarray, allele: int) -> tuple[list[int], list[list[int]]]:
        """Allele counts and carrier sample numbers of `allele` for every record of the block."""
        hit = (calls == allele).view(np.uint8)
        dosage = hit[:, :, 0].copy()
        for copy in range(1, hit.shape[2]):
            dosage += hit[:, :, copy]
        ac = dosage.sum(axis=1, dtype=np.int64).tolist()
        record, column = np.nonzero(dosage)
        members = self._numbers[column].tolist()
        bounds = np.searchsorted(record, np.arange(len(self._sites) + 1)).tolist()
        return ac, [members[bounds[i] : bounds[i + 1]] for i in range(len(self._sites))]


class _OrderCheck:
    """The server binary-searches `start` within contig blocks, so unsorted input must fail loudly."""

    def __init__(self) -> None:
        self.contigs: list[str] = []
        self._last = -1

    def check(self, contig: str, start: int) -> None:
        if not self.contigs or contig != self.contigs[-1]:
            if contig in self.contigs:
                raise ValueError(f"input is not sorted: contig {contig} appears in two blocks")
            self.contigs.append(contig)
            self._last = -1
        if start < self._last:
            raise ValueError(f"input is not sorted: {contig}:{start + 1} after {self._last + 1}")
        self._last = start


def build_variant_index(
    vcf_path: Path | str,
    out_dir: Path | str,
    sample_numbers: Mapping[str, int] | None = None,
    progress: Progress | None = None,
) -> IndexSummary:
    """Write `out_dir/variants.parquet` (atomically: a crash leaves any previous index in place).

    `sample_numbers` maps VCF sample ids to node-wide numbers (default: VCF column order), so bitmaps from
    several datasets share one number space for consent and phenotype filters.
    """
    began = time.perf_counter()
    source = Path(vcf_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / INDEX_FILE
    partial = out / (INDEX_FILE + ".partial")
    fd = os.open(source, os.O_RDONLY)
    reader = cyvcf2.VCF(fd, lazy=True)

    def bytes_read() -> int:
        return os.lseek(fd, 0, os.SEEK_CUR)

    try:
        numbers = _sample_number_array(list(reader.samples), sample_numbers)
        metadata = {
            "format": FORMAT,
            "source": source.name,
            "samples": base64.b64encode(BitMap(numbers.tolist()).serialize()).decode(),
        }
        order = _OrderCheck()
        n_records = n_rows = 0
        batch = _Batch()
        block = _RecordBlock(numbers)
        writer = pq.ParquetWriter(
            partial,
            SCHEMA.with_metadata({METADATA_KEY: json.dumps(metadata).encode()}),
            compression="zstd",
            use_dictionary=["contig", "ref", "alt", "variant_type"],
            sorting_columns=[pq.SortingColumn(0), pq.SortingColumn(1)],
        )
        with writer:
            for variant in reader:
                order.check(variant.CHROM, variant.start)
                block.add(variant, batch)
                n_records += 1
                if len(batch) >= ROW_GROUP_SIZE:
                    n_rows += len(batch)
                    writer.write_table(batch.table(), row_group_size=ROW_GROUP_SIZE)
                    batch = _Batch()
                if progress is not None and n_records % _PROGRESS_EVERY == 0:
                    progress(n_records, bytes_read())
            block.flush(batch)
            if len(batch):
                n_rows += len(batch)
                writer.write_table(batch.table(), row_group_size=ROW_GROUP_SIZE)
        total = bytes_read()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        reader.close()
        os.close(fd)  # htslib does not take ownership of a descriptor it was handed
    os.replace(partial, final)
    if progress is not None:
        progress(n_records, total)
    return IndexSummary(
        path=final,
        n_records=n_records,
        n_rows=n_rows,
        n_samples=len(numbers),
        contigs=tuple(order.contigs),
        bytes_read=total,
        seconds=time.perf_counter() - began,
    )
