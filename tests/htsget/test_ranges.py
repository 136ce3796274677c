"""Region answers, checked record by record against pysam on the original file.

For every dataset and many regions (seeded random ones plus contig edges, empty and record-free regions,
whole contigs, unplaced reads, the whole file) the blocks are concatenated the way a client would, the
result is read back with pysam to its end, and the records overlapping the region must be exactly those
pysam's own indexed ``fetch`` returns on the original.
"""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pysam
import pytest
from htsget_oracle import (
    DEMO_DATASETS,
    SUFFIX,
    Dataset,
    all_records,
    check_container,
    check_sorted,
    expected,
    header_text,
    materialize,
    overlapping,
    raw_bytes,
    records_of,
    source_records,
)

from genoshare.htsget import bgzf, cram
from genoshare.htsget.binning import level_firsts
from genoshare.htsget.ranges import (
    ByteRange,
    DataClass,
    IndexCache,
    InlineBlock,
    header_blocks,
    region_blocks,
)

Region = tuple[str | None, int | None, int | None]
RANDOM_REGIONS = 20


def dataset_regions(ds: Dataset, seed: str) -> list[Region]:
    rng = random.Random(seed)
    populated = sorted({name for _, name, *_ in source_records(ds) if name != "*"})
    regions: list[Region] = [(None, None, None)]
    if ds.fmt.is_reads:
        regions.append(("*", None, None))
    empty_contigs = [name for name in ds.contigs if name not in populated][:2]
    for name in populated + empty_contigs:
        length = ds.contigs[name] or 1_000_000
        first = min(s for _, contig, s, _ in source_records(ds) if contig == name) if name in populated else 0
        regions += [
            (name, None, None),
            (name, 0, 1),
            (name, length - 1, length),
            (name, length, length + 1000),
            (name, 0, max(first - 1, 0)),  # ends before the first record
            (name, first, first),  # empty interval
            (name, max(length - 5000, 0), None),
            (name, None, first + 1),
        ]
    for _ in range(RANDOM_REGIONS if populated else 0):
        name = rng.choice(populated)
        starts = [s for _, contig, s, _ in source_records(ds) if contig == name]
        around = rng.choice(starts) + rng.randrange(-2000, 2000)
        span = int(10 ** rng.uniform(0, 5.5))
        start = max(around, 0)
        regions.append((name, start, start + span))
    return regions


def check_region(ds: Dataset, cache: IndexCache, tmp_path: Path, region: Region) -> None:
    contig, start, end = region
    blocks = region_blocks(ds.fmt, ds.data, ds.index, contig, start, end, cache=cache)
    classes = [block.data_class for block in blocks]
    assert classes == sorted(classes, key=lambda c: c is DataClass.BODY), "header blocks must come first"
    blob = materialize(blocks, ds.data)
    check_container(ds, blob)
    answer = tmp_path / f"answer{SUFFIX[ds.fmt]}"
    answer.write_bytes(blob)
    assert header_text(ds, answer) == header_text(ds, ds.data)
    got = records_of(ds, answer)
    check_sorted(ds, got)
    assert not Counter(key for key, *_ in got) - all_records(ds), "records that are not in the source"
    assert overlapping(got, contig, start, end) == expected(ds, contig, start, end), region


def _all_dataset_names() -> list[str]:
    return [ds.name for ds in DEMO_DATASETS] + [
        "synthetic-bam-bai",
        "synthetic-bam-csi",
        "synthetic-cram",
        "synthetic-vcf-tbi",
        "synthetic-vcf-csi",
        "synthetic-bcf-csi",
    ]


@pytest.fixture
def dataset(request: pytest.FixtureRequest) -> Dataset:
    name = request.param
    for ds in DEMO_DATASETS:
        if ds.name == name:
            return ds
    family, _, kind = name.partition("-")[2].partition("-")
    synthetic = request.getfixturevalue("synthetic_reads" if family in ("bam", "cram") else "synthetic_variants")
    return synthetic[{"bam": kind, "cram": "cram", "vcf": kind, "bcf": "bcf"}[family]]


@pytest.mark.parametrize("dataset", _all_dataset_names(), indirect=True)
def test_regions_match_pysam(dataset: Dataset, cache: IndexCache, tmp_path: Path) -> None:
    for region in dataset_regions(dataset, dataset.name):
        check_region(dataset, cache, tmp_path, region)


@pytest.mark.parametrize("dataset", _all_dataset_names(), indirect=True)
def test_header_only_is_header_data_and_with_eof_a_valid_empty_file(
    dataset: Dataset, cache: IndexCache, tmp_path: Path
) -> None:
    blocks = header_blocks(dataset.fmt, dataset.data, cache=cache)
    assert blocks and all(b.data_class is DataClass.HEADER for b in blocks)
    eof = cram.EOF_CONTAINER if dataset.fmt == "CRAM" else bgzf.EOF_MARKER
    blob = materialize(blocks, dataset.data) + eof
    check_container(dataset, blob)
    answer = tmp_path / f"header{SUFFIX[dataset.fmt]}"
    answer.write_bytes(blob)
    assert header_text(dataset, answer) == header_text(dataset, dataset.data)
    assert records_of(dataset, answer) == []


@pytest.mark.parametrize("dataset", _all_dataset_names(), indirect=True)
def test_whole_file_is_sent_as_stored_bytes(dataset: Dataset, cache: IndexCache) -> None:
    """Without a region nothing needs cutting: the source's own bytes, header apart, plus EOF."""
    blocks = region_blocks(dataset.fmt, dataset.data, dataset.index, cache=cache)
    raw = raw_bytes(dataset.data)
    body_ranges = [b for b in blocks if isinstance(b, ByteRange) and b.data_class is DataClass.BODY]
    inline_bytes = sum(len(b.data) for b in blocks if isinstance(b, InlineBlock))
    # Header-end cut (at most one block) and EOF are the only inline parts.
    assert inline_bytes <= 2 * 65536 + 64
    assert len(body_ranges) <= 1
    if body_ranges:
        assert body_ranges[0].end in (len(raw), len(raw) - 28, len(raw) - 38)


def _sent(blocks: list) -> int:
    return sum(b.end - b.start if isinstance(b, ByteRange) else len(b.data) for b in blocks)


def test_small_regions_send_a_small_part(synthetic_reads: dict[str, Dataset], cache: IndexCache) -> None:
    """The index must actually be used: a 1 kbp query ships far less than its contig or file."""
    demo = next(ds for ds in DEMO_DATASETS if ds.name == "demo-bam")
    small = region_blocks(demo.fmt, demo.data, demo.index, "11", 5_050_000, 5_051_000, cache=cache)
    assert _sent(small) < demo.data.stat().st_size / 8
    ds = synthetic_reads["bai"]
    small = region_blocks(ds.fmt, ds.data, ds.index, "chrC", 300_000, 301_000, cache=cache)
    contig = region_blocks(ds.fmt, ds.data, ds.index, "chrC", cache=cache)
    assert _sent(small) < _sent(contig) / 2


@pytest.mark.parametrize("kind", ["bai", "csi"])
def test_index_chunks_stop_before_bins_past_the_region(
    synthetic_reads: dict[str, Dataset], cache: IndexCache, kind: str
) -> None:
    """Parent bins spread their chunks over the whole bin; those past the region's end must not be sent.

    Each such chunk used to cost two re-compressed edge blocks per ticket.  Checked: no chunk reaches the first
    chunk of a bin that starts at the region's end or later, and (the premise, on the data) every record from
    that offset on starts at the end or later.
    """
    ds = synthetic_reads[kind]
    index = cache.binning_index(ds.fmt, ds.index)
    placed: dict[int, list[tuple[int, int]]] = {}
    with pysam.AlignmentFile(str(ds.data), "rb") as reads:
        while True:
            offset = reads.tell()
            try:
                read = next(reads)
            except StopIteration:
                break
            if read.reference_id >= 0:
                placed.setdefault(read.reference_id, []).append((read.reference_start, offset))
    firsts = level_firsts(index.depth)
    rng = random.Random(kind)
    trimmed = 0
    for _ in range(300):
        tid = rng.randrange(len(placed))
        beg = rng.randrange(0, list(ds.contigs.values())[tid])
        end = beg + rng.randrange(1, 20_000)
        bound = 1 << 64
        for b, chunks in index.refs[tid].bins.items():
            level = max(level for level, first in enumerate(firsts) if first <= b)
            if (b - firsts[level]) << (index.min_shift + 3 * (index.depth - level)) >= end:
                bound = min([bound, *(chunk_start for chunk_start, _ in chunks)])
        assert all(position >= end for position, offset in placed[tid] if offset >= bound)
        chunks = index.chunks(tid, beg, end)
        assert all(chunk_start < chunk_end <= bound for chunk_start, chunk_end in chunks)
        trimmed += bound < (1 << 64) and bool(chunks)
    assert trimmed > 100  # the bound was in force for most regions
