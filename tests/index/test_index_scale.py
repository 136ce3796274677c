"""The scale path in miniature: a synthetic index in the node's layout, served by reading only what a query touches.

``benchmarks/index_scale.py`` runs this at 10^8 rows; here ~12 record batches over three contigs, checked
against an independent reading of the same file (pyarrow, whole) and against the batches' own contents.
"""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from pyroaring import BitMap

from genoshare.index.schema import ROW_GROUP_SIZE, IndexWriter
from genoshare.index.serving import BatchCache, VariantIndex
from genoshare_lab.synth.index_layout import Generated, write_synthetic_index

CONTIGS = ("20", "21", "22")


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    path = tmp_path_factory.mktemp("scale") / "variants.arrow"
    return write_synthetic_index(path, 12 * ROW_GROUP_SIZE - 100, 300, seed=5, contigs=CONTIGS)


@pytest.fixture(scope="module")
def truth(made: Generated) -> dict[tuple[str, int, str, str], dict[str, object]]:
    rows = _rows(made.path)
    return {(r["contig"], r["start"], r["ref"], r["alt"]): r for r in rows}


def _batches(path: Path) -> list[pa.RecordBatch]:
    with ipc.open_file(path) as arrow:
        return [arrow.get_batch(i) for i in range(arrow.num_record_batches)]


def _rows(path: Path) -> list[dict[str, object]]:
    return [row for batch in _batches(path) for row in batch.to_pylist()]


def _groups_holding(path: Path, contig: str, start: int) -> int:
    """Batches whose rows span ``start`` on ``contig`` (read from the rows): what a query must read, no more."""
    found = 0
    for batch in _batches(path):
        starts = batch.column("start").to_pylist()
        found += contig in batch.column("contig").to_pylist() and min(starts) <= start <= max(starts)
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


def test_batches_hold_one_contig_each(made: Generated) -> None:
    contigs = [set(batch.column("contig").to_pylist()) for batch in _batches(made.path)]
    assert all(len(names) == 1 for names in contigs)
    assert set().union(*contigs) == set(CONTIGS)


def test_a_point_query_reads_only_the_batch_that_holds_it(made: Generated, truth: dict) -> None:
    single = 0
    for key in random.Random(2).sample(sorted(truth), 60):
        contig, start, ref, alt = key
        index = VariantIndex({"synthetic": made.path})  # a cold server: nothing read but the footer's directory
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


def test_absent_alleles_read_at_most_one_batch(made: Generated, truth: dict) -> None:
    for contig, start, ref, _ in random.Random(3).sample(sorted(truth), 30):
        index = VariantIndex({"synthetic": made.path})
        assert index.sequence_query(contig, start + 1, "ACGTTGCA", ref).total == 0
        assert index.datasets.loads <= 1
    before = index.datasets.loads
    assert index.sequence_query("20", 900_000_000, "A").total == 0  # past the contig's last row
    assert index.sequence_query("Y", 1_000, "A").total == 0  # a contig the index does not have
    assert index.datasets.loads == before


def test_a_cold_query_reads_in_place(made: Generated, truth: dict) -> None:
    """Memory-mapped: a cold hit's batch is views of the file, not a decoded copy (Arrow allocates ~nothing)."""
    batch_bytes = made.path.stat().st_size / len(_batches(made.path))
    for contig, start, ref, alt in random.Random(4).sample(sorted(truth), 20):
        index = VariantIndex({"synthetic": made.path})
        allocated = pa.total_allocated_bytes()
        hit = index.sequence_query(contig, start, alt, ref)
        [row] = hit.rows()
        assert (row.ref, row.alt) == (ref, alt)
        assert hit.carrier_count() == truth[(contig, start, ref, alt)]["carrier_count"]
        assert index.datasets.loads == 1
        assert pa.total_allocated_bytes() - allocated < batch_bytes / 20


def test_windows_across_batches_answer_as_a_whole_read(made: Generated, truth: dict) -> None:
    index = VariantIndex({"synthetic": made.path}, cache_bytes=3 * 1024 * 1024)
    for batch in _batches(made.path)[1:4]:  # windows around the seams between batches
        seam, contig = batch.column("start")[0].as_py(), batch.column("contig")[0].as_py()
        low, high = seam - 20_000, seam + 20_000
        want = {k for k, r in truth.items() if k[0] == contig and r["start"] < high and r["end"] > low}  # type: ignore[operator]
        hits = index.range_query(contig, low, high)
        assert {(r.contig, r.start, r.ref, r.alt) for r in hits.rows()} == want
        union = BitMap()
        for key in want:
            union |= BitMap.deserialize(truth[key]["carriers"])
        assert hits.carriers() == union
    assert index.datasets.cached_bytes <= 3 * 1024 * 1024


def test_an_index_in_the_parquet_layout_before_is_still_served(
    made: Generated, truth: dict, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A node's indexes published before the Arrow layout answer the same, and the log says how to rebuild them."""
    old = tmp_path / "variants.parquet"  # as genoshare-variant-index/1 wrote it: row groups of 8,192, statistics
    table = pa.Table.from_batches(_batches(made.path))
    pq.write_table(table, old, row_group_size=8192, compression="zstd", write_statistics=["contig", "start", "end"])
    with caplog.at_level(logging.WARNING, logger="genoshare.index.serving"):
        before = VariantIndex({"cohort": tmp_path})
    [message] = [record.getMessage() for record in caplog.records]
    assert "Parquet layout" in message and "genoshare beacon-index cohort" in message
    now = VariantIndex({"cohort": made.path})
    for contig, start, ref, alt in random.Random(6).sample(sorted(truth), 40):
        answers = [index.sequence_query(contig, start, alt, ref) for index in (before, now)]
        assert answers[0].rows() == answers[1].rows() and answers[0].carriers() == answers[1].carriers()
        window = [index.range_query(contig, start - 5_000, start + 5_000).rows() for index in (before, now)]
        assert window[0] == window[1]


def test_the_writer_refuses_rows_out_of_order(made: Generated, tmp_path: Path) -> None:
    """A server trusts each batch sorted by start (its directory says so): a writer handed rows out of order fails."""
    rows = _batches(made.path)[0].slice(0, 50)
    shuffled = rows.take(pa.array([*range(25, 50), *range(25)]))
    with pytest.raises(ValueError, match="out of order"), IndexWriter(tmp_path / "v.arrow", "{}") as writer:
        writer.add(shuffled)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its staging stream is left


def test_indexes_sharing_a_cache_stay_within_its_one_bound(made: Generated, truth: dict) -> None:
    """The Beacon serves every index through one cache: its bound is the process's, however many indexes."""
    cache = BatchCache(3 * made.path.stat().st_size // len(_batches(made.path)))  # ~three batches
    indexes = [VariantIndex({name: made.path}, cache) for name in ("first", "second", "third")]
    for contig, start, ref, alt in random.Random(9).sample(sorted(truth), 40):
        for index in indexes:
            [row] = index.sequence_query(contig, start, alt, ref).rows()
            assert row.ac == truth[(contig, start, ref, alt)]["ac"]
            assert cache.cached_bytes <= cache.limit
    assert sum(index.datasets.loaded() for index in indexes) <= 3
    assert sum(index.datasets.loads for index in indexes) > 40  # they did read, and evict one another


def test_an_index_of_another_format_version_is_refused_not_misread(made: Generated, tmp_path: Path) -> None:
    """A file a later genoshare wrote (another format) fails to open with the command to rebuild it."""
    with IndexWriter(tmp_path / "variants.arrow", json.dumps({"format": "genoshare-variant-index/3"})) as writer:
        for batch in _batches(made.path)[:2]:
            writer.add(batch)
    with pytest.raises(ValueError, match=r"genoshare-variant-index/3 index.*genoshare beacon-index"):
        VariantIndex({"future": tmp_path})
