"""Fixtures for tests that run genoshare as real processes."""

from __future__ import annotations

import random
from pathlib import Path

import pysam
import pytest

from processes import serve

__all__ = ["serve"]


@pytest.fixture(scope="session")
def big_bams(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Two sorted BAMs of synthetic reads, large enough (~15 MB each) that an ingest takes a while."""
    directory = tmp_path_factory.mktemp("bams")
    rng = random.Random(7)
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": "chr1", "LN": 50_000_000}]}
    paths = []
    for number in range(2):
        path = directory / f"synthetic{number}.bam"
        with pysam.AlignmentFile(str(path), "wb", header=header) as out:
            for index, start in enumerate(sorted(rng.randrange(0, 49_999_000) for _ in range(150_000))):
                read = pysam.AlignedSegment(out.header)
                read.query_name = f"r{number}-{index}"
                read.reference_id = 0
                read.reference_start = start
                read.mapping_quality = 60
                read.cigarstring = "100M"
                read.query_sequence = "".join(rng.choices("ACGT", k=100))
                read.query_qualities = pysam.qualitystring_to_array("I" * 100)
                out.write(read)
        paths.append(path)
    return paths
