"""Counts of individuals over many alleles (range queries) use precomputed unions; they must count the same."""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import pyarrow as pa
from pyroaring import BitMap

from genoshare.index.schema import FORMAT, SCHEMA, IndexWriter
from genoshare.index.serving import RUN, VariantIndex


def write_index(path: Path, rng: random.Random, n_rows: int, n_samples: int) -> list[BitMap]:
    """A sorted one-contig index whose alleles are carried by few people, some by nobody."""
    carriers = [BitMap(rng.sample(range(n_samples), rng.choice([0, 0, 1, 1, 2, 3, 8]))) for _ in range(n_rows)]
    starts = sorted(rng.sample(range(1_000_000), n_rows))
    columns = {
        "contig": ["20"] * n_rows, "start": starts, "end": [s + 1 for s in starts], "ref": ["A"] * n_rows,
        "alt": ["G"] * n_rows, "variant_type": ["SNP"] * n_rows, "length": [1] * n_rows,
        "ac": [len(c) for c in carriers], "an": [2 * n_samples] * n_rows,
        "af": [len(c) / (2 * n_samples) for c in carriers], "carrier_count": [len(c) for c in carriers],
        "carriers": [c.serialize() for c in carriers],
    }  # fmt: skip
    samples = base64.b64encode(BitMap(range(n_samples)).serialize()).decode()
    with IndexWriter(path, json.dumps({"format": FORMAT, "source": "test", "samples": samples})) as writer:
        writer.add(pa.RecordBatch.from_pydict(columns, schema=SCHEMA))
    return carriers


def test_individuals_carrying_any_allele_of_a_window(tmp_path: Path) -> None:
    rng = random.Random(4)
    carriers = write_index(tmp_path / "variants.arrow", rng, 40 * RUN + 17, 200)
    index = VariantIndex({"cohort": tmp_path / "variants.arrow"})
    starts = index.datasets[0].starts
    for _ in range(60):
        low = rng.randrange(0, 900_000)
        window = (low, low + rng.choice([500, 20_000, 200_000]))
        everyone, some = BitMap(range(200)), BitMap(rng.sample(range(200), 60))
        for scope in (everyone, some):
            hits = index.search("20", overlap=window).carried_within(scope)
            expected = BitMap()
            for row, start in enumerate(starts.tolist()):
                if window[0] <= start < window[1]:
                    expected |= carriers[row] & scope
            assert hits.carriers(scope) == expected
            assert hits.carrier_count(scope) == len(expected)


def test_a_window_answer_is_the_callers_own_set(tmp_path: Path) -> None:
    """Whole runs come from precomputed frozen unions; the answer is still a plain set, apart from them."""
    write_index(tmp_path / "variants.arrow", random.Random(5), 8 * RUN, 50)
    hits = VariantIndex({"cohort": tmp_path / "variants.arrow"}).search("20", overlap=(0, 1_000_000))
    carriers = hits.carriers()
    before = BitMap(carriers)
    carriers.add(1_000)  # a FrozenBitMap has no add()
    assert hits.carriers() == before
