"""The scale path in miniature: a synthetic index in the node's layout, served by reading only what a query touches.

``benchmarks/index_scale.py`` runs this at 10^8 rows; here ~12 row groups over three contigs, checked
against an independent reading of the same file (pyarrow, whole) and against the row groups' own footer.
"""

from __future__ import annotations

import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pyroaring import BitMap

from genoshare.index.schema import ROW_GROUP_SIZE
from genoshare.index.serving import VariantIndex
from genoshare_lab.synth.index_layout import Generated, write_synthetic_index

CONTIGS = ("20", "21", "22")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    path = tmp_path_factory.mktemp("scale") / "variants.parquet"
    return write_synthetic_index(path, 12 * ROW_GROUP_SIZE - 100, 300, seed=5, contigs=CONTIGS)


@pytest.fixture(scope="module")
def truth(made: Generated) -> dict[tuple[str, int, str, str], dict[str, object]]:
    rows = pq.read_table(made.path).to_pylist()
    return {(r["contig"], r["start"], r["ref"], r["alt"]): r for r in rows}


def _groups_holding(path: Path, contig: str, start: int) -> int:
    """Row groups whose footer says they may hold ``start`` on ``contig``: what a query must read, no more."""
    metadata = pq.ParquetFile(path).metadata
    names = metadata.schema.names
    found = 0
    for group in range(metadata.num_row_groups):
        stats = [metadata.row_group(group).column(names.index(c)).statistics for c in ("contig", "start")]
        found += stats[0].min <= contig <= stats[0].max and stats[1].min <= start <= stats[1].max
    return found


def test_the_spectrum_is_mostly_singletons(made: Generated, truth: dict) -> None:
    """~1/zeta(2) = 61% singletons, as ExAC-like data; counts and bitmaps agree row by row."""
    assert made.n_rows == len(truth) == 12 * ROW_GROUP_SIZE - 100
    assert 0.55 < made.singletons / made.n_rows < 0.67
    for row in random.Random(1).sample(list(truth.values()), 500):
        carriers = BitMap.deserialize(row["carriers"])  # type: ignore[arg-type]
        assert len(carriers) == row["carrier_count"] and max(carriers) < 300
        assert row["carrier_count"] <= row["ac"] <= 2 * row["carrier_count"]
        assert row["an"] == 600 and row["af"] == row["ac"] / 600


def test_row_groups_hold_one_contig_each(made: Generated) -> None:
    metadata = pq.ParquetFile(made.path).metadata
    column = metadata.schema.names.index("contig")
    bounds = [metadata.row_group(g).column(column).statistics for g in range(metadata.num_row_groups)]
    assert all(stats.min == stats.max for stats in bounds)
    assert {stats.min for stats in bounds} == set(CONTIGS)


def test_a_point_query_reads_only_the_row_group_that_holds_it(made: Generated, truth: dict) -> None:
    single = 0
    for key in random.Random(2).sample(sorted(truth), 60):
        contig, start, ref, alt = key
        index = VariantIndex({"synthetic": made.path})  # a cold server: nothing read but the footer
        assert index.datasets.loaded() == 0
        before = index.datasets.loads
        hit = index.sequence_query(contig, start, alt, ref)
        [row] = hit.rows()
        want = truth[key]
        assert (row.contig, row.start, row.end, row.ac, row.an) == (contig, start, want["end"], want["ac"], want["an"])
        assert hit.carriers() == BitMap.deserialize(want["carriers"])
        touched = index.datasets.loads - before
        assert touched == _groups_holding(made.path, contig, start)
        single += touched == 1
    assert single == 60


def test_absent_alleles_read_at_most_one_row_group(made: Generated, truth: dict) -> None:
    for contig, start, ref, _ in random.Random(3).sample(sorted(truth), 30):
        index = VariantIndex({"synthetic": made.path})
        assert index.sequence_query(contig, start + 1, "ACGTTGCA", ref).total == 0
        assert index.datasets.loads <= 1
    before = index.datasets.loads
    assert index.sequence_query("20", 900_000_000, "A").total == 0  # past the contig's last row
    assert index.sequence_query("Y", 1_000, "A").total == 0  # a contig the index does not have
    assert index.datasets.loads == before


def test_a_start_not_there_reads_only_the_positions(made: Generated, truth: dict) -> None:
    """A cold query at a start the row group lacks holds its positions alone: under half of what a hit holds."""
    starts = {(contig, start) for contig, start, _, _ in truth}
    checked = 0
    for contig, start, ref, alt in random.Random(4).sample(sorted(truth), 20):
        if (contig, start + 1) in starts:
            continue
        missed = VariantIndex({"synthetic": made.path})
        assert missed.sequence_query(contig, start + 1, alt, ref).total == 0
        assert missed.datasets.loads == 1
        index = VariantIndex({"synthetic": made.path})
        hit = index.sequence_query(contig, start, alt, ref)
        [row] = hit.rows()
        assert (row.ref, row.alt, row.ac) == (ref, alt, truth[(contig, start, ref, alt)]["ac"])
        held = index.datasets[int(hit.datasets[0])].nbytes
        assert 0 < missed.datasets.cached_bytes < held / 2
        checked += 1
    assert checked >= 15


def test_windows_across_row_groups_answer_as_a_whole_read(made: Generated, truth: dict) -> None:
    index = VariantIndex({"synthetic": made.path}, cache_bytes=3 * 1024 * 1024)
    metadata = pq.ParquetFile(made.path).metadata
    names = metadata.schema.names
    for group in range(1, 4):  # windows around the seams between row groups
        seam = metadata.row_group(group).column(names.index("start")).statistics.min
        contig = metadata.row_group(group).column(names.index("contig")).statistics.min
        low, high = seam - 20_000, seam + 20_000
        want = {k for k, r in truth.items() if k[0] == contig and r["start"] < high and r["end"] > low}  # type: ignore[operator]
        hits = index.range_query(contig, low, high)
        assert {(r.contig, r.start, r.ref, r.alt) for r in hits.rows()} == want
        union = BitMap()
        for key in want:
            union |= BitMap.deserialize(truth[key]["carriers"])
        assert hits.carriers() == union
    assert index.datasets.cached_bytes <= 3 * 1024 * 1024
