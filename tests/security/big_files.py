"""Files large enough that a download outlasts the socket buffers, quick to make and to ingest."""

from __future__ import annotations

import random
from pathlib import Path

import pysam

READ_LENGTH = 10_000
_BASES = bytes(b"ACGT"[byte % 4] for byte in range(256))
_QUALITIES = bytes(33 + byte % 41 for byte in range(256))


def long_read_bam(path: Path, sample: str, mebibytes: int, seed: int = 3) -> Path:
    """A sorted, indexed single-sample BAM of random 10 kb reads: about ``mebibytes`` MiB (random bases and
    qualities barely compress), in a few thousand records so that ingest stays fast."""
    rng = random.Random(seed)
    reads = mebibytes * 1024 * 1024 // 10_000
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": "chr1", "LN": 50_000_000}],
        "RG": [{"ID": "rg1", "SM": sample}],
    }
    with pysam.AlignmentFile(str(path), "wb", header=header) as out:
        for number, start in enumerate(sorted(rng.randrange(0, 49_000_000) for _ in range(reads))):
            read = pysam.AlignedSegment(out.header)
            read.query_name = f"read{number}"
            read.reference_id, read.reference_start, read.mapping_quality = 0, start, 60
            read.cigarstring = f"{READ_LENGTH}M"
            read.query_sequence = rng.randbytes(READ_LENGTH).translate(_BASES).decode()
            qualities = rng.randbytes(READ_LENGTH).translate(_QUALITIES).decode()
            read.query_qualities = pysam.qualitystring_to_array(qualities)
            read.set_tag("RG", "rg1")
            out.write(read)
    pysam.index(str(path))
    return path
