"""Range computation stays cheap once the index is cached (the budget is 5 ms per region: a ticket's p50).

The bound asserted is loose (the CI machine is shared); benchmarks/htsget.py measures the real figures.
"""

from __future__ import annotations

import random
import statistics
import time

from htsget_oracle import DEMO_DATASETS

from genoshare.htsget.ranges import IndexCache, region_blocks

BUDGET_SECONDS = 0.005


def test_median_region_query_is_within_budget() -> None:
    rng = random.Random(5)
    cache = IndexCache()
    timings = []
    for ds in DEMO_DATASETS:
        populated = {"demo-bam": "11", "demo-cram": "20"}.get(ds.name, next(iter(ds.contigs)))
        region_blocks(ds.fmt, ds.data, ds.index, populated, 0, 1, cache=cache)  # warm the cache
        for _ in range(30):
            start = rng.randrange(0, 7_000_000)
            began = time.perf_counter()
            region_blocks(ds.fmt, ds.data, ds.index, populated, start, start + rng.randrange(1, 50_000), cache=cache)
            timings.append(time.perf_counter() - began)
    assert statistics.median(timings) < BUDGET_SECONDS
