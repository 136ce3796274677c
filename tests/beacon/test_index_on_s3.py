"""A node whose objects are in S3 keeps its Beacon index there too, and answers exactly as from local disk.

Two nodes ingest the same cohort: one on local files, one on a real S3 server process (moto's,
``tests/objects_s3.py``). The S3 node's index must be in the bucket and nowhere in its data directory,
must be read by ranged GETs of part of it (not downloaded), and every Beacon answer must match.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from genoshare.api.app import create_app
from genoshare.crypt.files import Positional
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.index.schema import ROW_GROUP_SIZE
from genoshare.index.serving import VariantIndex
from genoshare.index.stored import stored_index
from genoshare.node import Node, build_indexer, build_ingestor, init_node
from genoshare.settings import load_settings
from genoshare_lab.synth import generate_cohort
from genoshare_lab.synth.index_layout import write_synthetic_index
from objects_s3 import S3Server

from support import PUBLIC_URL


def _node(root: Path, vcf: Path, **objects: Any) -> Node:
    node = init_node(load_settings(root, public_url=PUBLIC_URL, environment="test", **objects))
    public = NewDataset("cohort", "cohort", "Clinic", "public", ["NRES"], pseudonymise=False)
    DatasetService(node.database).create(public)
    build_ingestor(node).ingest("cohort", [vcf])
    return node


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory, s3: S3Server) -> Iterator[tuple[Node, Node, Path]]:
    root = tmp_path_factory.mktemp("index-on-s3")
    cohort = generate_cohort(root / "cohort", 30, 400_000, seed=11, n_variants=1500)
    local = _node(root / "local", cohort.vcf_path)
    remote = _node(root / "s3", cohort.vcf_path, objects_url=f"s3://{s3.new_bucket()}/node", s3=s3.settings())
    index = next((root / "local").glob("beacon/cohort/*/variants.arrow"))
    yield local, remote, index
    local.close()
    remote.close()


def test_the_index_is_in_the_bucket_not_on_local_disk(nodes: tuple[Node, Node, Path]) -> None:
    _, remote, _ = nodes
    [key] = [k for k in remote.objects.keys("beacon/") if k.endswith("variants.arrow")]
    assert key.startswith("beacon/cohort/")
    assert not list(remote.settings.data_dir.rglob("*.arrow*"))  # scratch and staging included


def test_beacon_answers_from_s3_match_local_disk(nodes: tuple[Node, Node, Path]) -> None:
    local, remote, index = nodes
    rows = _read(index).select(["contig", "start", "ref", "alt"]).to_pylist()
    rng = random.Random(3)
    asks: list[dict[str, Any]] = []
    for row in rng.sample(rows, 25):
        asks.append({"referenceName": row["contig"], "start": row["start"], "alternateBases": row["alt"]})
        asks.append({**asks[-1], "alternateBases": "ACGTTGCA"})  # absent
    for _ in range(5):
        low = rng.randrange(0, 380_000)
        asks.append({"referenceName": "20", "start": low, "end": low + 20_000, "limit": 0})
    with TestClient(create_app(local)) as on_disk, TestClient(create_app(remote)) as on_s3:
        found = 0
        for params in asks:
            params = {**params, "requestedGranularity": "record"}
            want = on_disk.get("/api/g_variants", params=params)
            got = on_s3.get("/api/g_variants", params=params)
            assert (got.status_code, want.status_code) == (200, 200)
            assert got.json()["responseSummary"] == want.json()["responseSummary"]
            assert got.json()["response"] == want.json()["response"]
            found += want.json()["responseSummary"]["exists"]
    assert 25 <= found < len(asks)  # present ones and windows answer yes, absent ones no


def test_a_query_reads_part_of_the_index_not_all_of_it(nodes: tuple[Node, Node, Path], tmp_path: Path) -> None:
    """Ranged reads: the footer and the one batch a query touches, counted at the store; never the whole object."""
    _, remote, _ = nodes
    store = remote.objects
    made = write_synthetic_index(tmp_path / "variants.arrow", 12 * ROW_GROUP_SIZE, 400, contigs=("20", "21"))
    first = _read(made.path).slice(3 * ROW_GROUP_SIZE + 10, 1).to_pylist()[0]
    store.put(made.path, "beacon/synthetic/variants.arrow")
    read: list[int] = []

    class Counting:
        def __init__(self, inner: Positional) -> None:
            self.inner, self.name, self.size = inner, inner.name, inner.size

        def readinto(self, into: memoryview, offset: int) -> int:
            read.append(len(into))
            return self.inner.readinto(into, offset)

        def close(self) -> None:
            self.inner.close()

    original = store.open
    store.open = lambda key: Counting(original(key))  # type: ignore[method-assign]
    try:
        index = VariantIndex({"synthetic": stored_index(store, "beacon/synthetic")})
        opened = sum(read)
        hit = index.sequence_query(first["contig"], first["start"], first["alt"], first["ref"])
        assert [(row.start, row.alt) for row in hit.rows()] == [(first["start"], first["alt"])]
    finally:
        store.open = original  # type: ignore[method-assign]
    size = original("beacon/synthetic/variants.arrow").size
    assert index.datasets.loads == 1
    assert 0 < opened < size / 10  # the footer and its directory
    assert sum(read) - opened < size / 6  # one of twelve batches


def test_an_index_published_in_the_parquet_layout_before_is_served_from_the_bucket(
    nodes: tuple[Node, Node, Path], tmp_path: Path
) -> None:
    """A bucket holding ``variants.parquet`` (genoshare-variant-index/1) and no Arrow file: still answered."""
    _, remote, _ = nodes
    made = write_synthetic_index(tmp_path / "variants.arrow", 3 * ROW_GROUP_SIZE, 100, contigs=("21",))
    table = _read(made.path)
    pq.write_table(table, tmp_path / "variants.parquet", row_group_size=8192, write_statistics=["contig", "start"])
    remote.objects.put(tmp_path / "variants.parquet", "beacon/older/variants.parquet")
    index = VariantIndex({"older": stored_index(remote.objects, "beacon/older")})
    for row in random.Random(8).sample(table.to_pylist(), 10):
        hit = index.sequence_query(row["contig"], row["start"], row["alt"], row["ref"])
        assert [(r.start, r.alt, r.ac) for r in hit.rows()] == [(row["start"], row["alt"], row["ac"])]


def _read(path: Path) -> pa.Table:
    with ipc.open_file(path) as arrow:
        return arrow.read_all()


def test_beacon_index_rebuilds_an_older_parquet_index_in_the_bucket(
    nodes: tuple[Node, Node, Path], tmp_path: Path
) -> None:
    """The older layout in the bucket is rebuilt as variants.arrow, its Parquet object deleted, answers unchanged."""
    local, remote, _ = nodes
    store = remote.objects
    [key] = [k for k in store.keys("beacon/cohort/") if k.endswith("/variants.arrow")]
    rows = ipc.open_file(pa.py_buffer(store.read_bytes(key))).read_all()
    pq.write_table(rows, tmp_path / "variants.parquet", row_group_size=8192)  # as an older node published it
    store.put(tmp_path / "variants.parquet", key.replace(".arrow", ".parquet"))
    store.delete(key)
    [rebuilt] = build_indexer(remote).index_dataset("cohort")
    assert sorted(store.keys(f"{rebuilt.path}/")) == [key]
    params = {"referenceName": "20", "start": 0, "end": 400_000, "requestedGranularity": "record"}
    with TestClient(create_app(local)) as on_disk, TestClient(create_app(remote)) as on_s3:
        assert (
            on_s3.get("/api/g_variants", params=params).json()["response"]
            == (on_disk.get("/api/g_variants", params=params).json()["response"])
        )
