"""Build the columnar variant index from a multi-sample VCF/BCF.

Memory stays flat in the input size: records stream in blocks of 1,024 (see `bcf`) and leave as the record
batches of an Arrow file (`schema.IndexWriter`). Parsing runs in a bcftools child on the other core while this
process counts alleles with numpy per block, so the build keeps pace with `bcftools view` itself rather than
with cyvcf2. We open the input file descriptor ourselves and hand it to the reader: it shares the file offset,
so progress can report input bytes consumed without wrapping the reader's reads.
"""

from __future__ import annotations

import base64
import json
import os
import time
from array import array
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from genoshare.index.bcf import BcfStream, Cyvcf2Source, SiteBlock, UndeclaredInHeader
from genoshare.index.schema import FORMAT, MANIFEST, SCHEMA, IndexWriter, classify

Progress = Callable[[int, int], None]

INDEX_FILE = "variants.arrow"
#: The one file of an index written before the Arrow layout (``genoshare-variant-index/1``): still served.
PARQUET_INDEX_FILE = "variants.parquet"
_PROGRESS_EVERY = 10_000


@dataclass(frozen=True)
class IndexSummary:
    path: Path
    n_records: int
    n_rows: int
    n_samples: int
    contigs: tuple[str, ...]
    bytes_read: int
    seconds: float


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


@dataclass(frozen=True)
class _AlleleCarriers:
    """Carrier sample numbers of one ALT allele for every record of a block, as consecutive runs."""

    members: array  # typecode "I": pyroaring's fast constructor path (numpy arrays go element by element)
    bounds: list[int]  # record i's carriers are members[bounds[i]:bounds[i + 1]]


def _carrier_mask(hit: np.ndarray) -> np.ndarray:
    """(records, samples) mask of samples with the allele on any copy, from a (records, samples, ploidy) mask.

    `any(axis=2)` over a short last axis runs ~200x slower than viewing each sample's calls as one integer.
    """
    ploidy = hit.shape[2]
    if ploidy in (1, 2, 4, 8):
        return hit.view(f"u{ploidy}")[..., 0] != 0
    mask = hit.any(axis=2)
    assert isinstance(mask, np.ndarray)  # numpy types a reduction as maybe a scalar; over 3 axes it is not
    return mask


def _block_rows(block: SiteBlock, numbers: np.ndarray, contigs: list[str]) -> pa.RecordBatch:
    """One row per classifiable ALT allele of the block's records, in record then allele order.

    Allele counts and carrier sets come from one numpy pass per allele number over the whole block; the
    only per-row Python work left is classifying the allele and building its Roaring bitmap.
    """
    calls = block.genotypes
    n = len(block)
    n_samples = calls.shape[1]
    if calls.size == 0 or calls.min() >= 0:
        an = np.full(n, calls[0].size, np.int64)
    else:  # missing calls or mixed ploidy
        an = (calls >= 0).reshape(n, -1).view(np.uint8).sum(axis=1, dtype=np.int64)
    n_alts = np.array([len(alts) for alts in block.alts], np.int64)
    max_alts = int(n_alts.max(initial=0))
    ac = np.zeros((max_alts, n), np.int64)
    carrier_count = np.zeros((max_alts, n), np.int64)
    carriers: list[_AlleleCarriers] = []
    for allele in range(1, max_alts + 1):
        records = np.flatnonzero(n_alts >= allele)
        hit = (calls if len(records) == n else calls[records]) == allele
        ac[allele - 1, records] = hit.reshape(len(records), -1).view(np.uint8).sum(axis=1, dtype=np.int64)
        # flatnonzero + divmod: 2-D nonzero costs ~8x more on a 1,000-sample block.
        record, column = np.divmod(np.flatnonzero(_carrier_mask(hit)), n_samples)
        counts = np.bincount(records[record], minlength=n)
        carrier_count[allele - 1] = counts
        bounds = np.zeros(n + 1, np.int64)
        np.cumsum(counts, out=bounds[1:])
        carriers.append(_AlleleCarriers(array("I", numbers[column].tobytes()), bounds.tolist()))

    starts, ends = block.start.tolist(), block.end.tolist()
    row_record: list[int] = []
    row_allele: list[int] = []
    refs: list[str] = []
    alts: list[str] = []
    kinds: list[str] = []
    lengths: list[int] = []
    bitmaps: list[bytes] = []
    for i, (ref, record_alts) in enumerate(zip(block.ref, block.alts, strict=True)):
        for allele, alt in enumerate(record_alts):
            kind = classify(ref, alt, starts[i], ends[i])
            if kind is None:
                continue
            allele_carriers = carriers[allele]
            lo, hi = allele_carriers.bounds[i], allele_carriers.bounds[i + 1]
            bitmaps.append(BitMap(allele_carriers.members[lo:hi]).serialize())
            row_record.append(i)
            row_allele.append(allele)
            refs.append(ref)
            alts.append(alt)
            kinds.append(kind[0])
            lengths.append(kind[1])

    record_idx = np.array(row_record, np.int64)
    allele_idx = np.array(row_allele, np.int64)
    row_ac = ac[allele_idx, record_idx]
    row_an = an[record_idx]
    af = np.divide(row_ac, row_an, out=np.zeros(len(record_idx)), where=row_an > 0)
    columns = [
        pa.array(contigs, pa.string()).take(block.contig[record_idx]),
        block.start[record_idx],
        block.end[record_idx],
        refs,
        alts,
        kinds,
        np.array(lengths, np.int64),
        row_ac.astype(np.int32),
        row_an.astype(np.int32),
        af,
        carrier_count[allele_idx, record_idx].astype(np.int32),
        bitmaps,
    ]
    return pa.RecordBatch.from_arrays(
        [pa.array(c, f.type) for c, f in zip(columns, SCHEMA, strict=True)], schema=SCHEMA
    )


class _OrderCheck:
    """The server binary-searches `start` within contig blocks, so unsorted input must fail loudly."""

    def __init__(self, names: list[str]) -> None:
        self._names = names
        self.contigs: list[str] = []
        self._contig = -1
        self._last = -1

    def check(self, block: SiteBlock) -> None:
        """Raise at the block's first record that breaks the (contig block, start) order."""
        contig, start = block.contig, block.start
        previous_contig = np.concatenate(([self._contig], contig[:-1]))
        previous_start = np.concatenate(([self._last], start[:-1]))
        same = contig == previous_contig
        backwards = np.flatnonzero(same & (start < previous_start))
        first_bad = int(backwards[0]) if len(backwards) else len(contig)
        for i in np.flatnonzero(~same[:first_bad]).tolist():
            name = self._names[contig[i]]
            if name in self.contigs:
                raise ValueError(f"input is not sorted: contig {name} appears in two blocks")
            self.contigs.append(name)
        if len(backwards):
            name = self._names[contig[first_bad]]
            raise ValueError(
                f"input is not sorted: {name}:{start[first_bad] + 1} after {previous_start[first_bad] + 1}"
            )
        self._contig, self._last = int(contig[-1]), int(start[-1])


def build_variant_index(
    vcf_path: Path | str,
    out_dir: Path | str,
    sample_numbers: Mapping[str, int] | None = None,
    progress: Progress | None = None,
) -> IndexSummary:
    """Write `out_dir/variants.arrow` (atomically: a crash leaves any previous index in place).

    `sample_numbers` maps VCF sample ids to node-wide numbers (default: VCF column order), so bitmaps from
    several datasets share one number space for consent and phenotype filters. An input whose header does not
    declare every contig and tag it uses is read again from the start by cyvcf2 (see `UndeclaredInHeader`).
    """
    began = time.perf_counter()
    source = Path(vcf_path)
    out = Path(out_dir)
    out.mkdir(mode=0o700, parents=True, exist_ok=True)
    final = out / INDEX_FILE
    partial = out / (INDEX_FILE + ".partial")
    fd = os.open(source, os.O_RDONLY)
    try:
        try:
            with BcfStream(fd) as stream:
                written = write_index_file(stream, source.name, partial, sample_numbers, fd, progress)
        except UndeclaredInHeader:
            with Cyvcf2Source(fd) as reader:
                written = write_index_file(reader, source.name, partial, sample_numbers, fd, progress)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)  # a bcftools child had its own copy; htslib does not take ownership of a handed descriptor
    os.chmod(partial, 0o600)  # carrier bitmaps: the genotype matrix, for the node's user only
    os.replace(partial, final)
    (out / MANIFEST).unlink(missing_ok=True)  # a partitioned build's publication, which would be served first
    (out / PARQUET_INDEX_FILE).unlink(missing_ok=True)  # the layout before: served if this one were not there
    if progress is not None:
        progress(written.n_records, written.bytes_read)
    return IndexSummary(
        path=final,
        n_records=written.n_records,
        n_rows=written.n_rows,
        n_samples=written.n_samples,
        contigs=written.contigs,
        bytes_read=written.bytes_read,
        seconds=time.perf_counter() - began,
    )


@dataclass(frozen=True)
class WrittenIndex:
    n_records: int
    n_rows: int
    n_samples: int
    contigs: tuple[str, ...]
    bytes_read: int


def write_index_file(
    source: BcfStream | Cyvcf2Source,
    source_name: str,
    partial: Path,
    sample_numbers: Mapping[str, int] | None,
    fd: int | None = None,
    progress: Progress | None = None,
) -> WrittenIndex:
    """Stream `source`'s blocks into the index file `partial`: the whole index, or one region's part of it.

    `fd` is the input descriptor the reader shares, if any: its offset is what the reader consumed.
    """
    numbers = _sample_number_array(source.samples, sample_numbers)
    metadata = {
        "format": FORMAT,
        "source": source_name,
        "samples": base64.b64encode(BitMap(numbers.tolist()).serialize()).decode(),
    }
    order = _OrderCheck(source.contigs)
    n_records = 0
    with IndexWriter(partial, json.dumps(metadata)) as writer:
        for block in source.blocks():
            order.check(block)
            writer.add(_block_rows(block, numbers, source.contigs))
            reported = n_records // _PROGRESS_EVERY
            n_records += len(block)
            if fd is not None and progress is not None and n_records // _PROGRESS_EVERY > reported:
                progress(n_records, os.lseek(fd, 0, os.SEEK_CUR))
    consumed = os.lseek(fd, 0, os.SEEK_CUR) if fd is not None else 0
    return WrittenIndex(n_records, writer.n_rows, len(numbers), tuple(order.contigs), consumed)
