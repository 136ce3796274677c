"""Synthetic variant indexes written straight into the node's index layout, for the scale benchmark.

A VCF of 10^8 sites x 10^3 samples would take hours to write and to ingest; the index itself is what a
query reads, so this writes rows of ``genoshare.index.schema.SCHEMA`` directly, in the builder's file layout
(``IndexWriter``: one ``variants.arrow`` whose record batches are the units a server reads), streaming
in blocks so memory stays flat in the number of variants.

The allele-count spectrum has the shape of a real population's: P(allele count = i) ~ i^-alpha over
1..2n-1 haploid copies. alpha = 1 is the neutral site-frequency spectrum of a constant-size population
(Watterson 1975; Fu 1995: E[sites with i copies] = theta / i). Human populations grew explosively in the
last few hundred generations, which gives far more rare variants than that (Keinan & Clark 2012, Science
336:740; Tennessen et al. 2012, Science 337:64); in ExAC's 60,706 exomes 54% of variants are singletons
and 99% have a frequency below 1% (Lek et al. 2016, Nature 536:285). The default alpha = 2 makes 61% of
rows singletons (1/zeta(2)) and ~0.9% common (i > 2n/100): the proportions of a sequenced cohort, and
the only kind of spectrum under which 10^3 people can carry 10^8 distinct alleles. Storage follows the
spectrum: a row's carrier bitmap holds 2 bytes per carrier, so alpha = 1 (mean ~240 carriers a row) would
be ~50 GB at 10^8 rows, alpha = 2 (mean ~5) ~2 GB.

Positions are uniform over GRCh38's autosomes and X (in proportion to their lengths), one ALT per site
(no multi-allelic sites, so no two rows share a site and an ALT), 90% SNVs and 5% each short deletions and
insertions, so the density (one allele per ~30 bp at 10^8) and the shape of the
rows are those of a deep whole-genome callset.
"""

from __future__ import annotations

import base64
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from genoshare.index.schema import FORMAT, SCHEMA, IndexWriter

#: GRCh38's autosomes and X, in header order, with their lengths (the `##contig` lines of GRCh38 headers).
GRCH38: dict[str, int] = {
    "1": 248_956_422, "2": 242_193_529, "3": 198_295_559, "4": 190_214_555, "5": 181_538_259,
    "6": 170_805_979, "7": 159_345_973, "8": 145_138_636, "9": 138_394_717, "10": 133_797_422,
    "11": 135_086_622, "12": 133_275_309, "13": 114_364_328, "14": 107_043_718, "15": 101_991_189,
    "16": 90_338_345, "17": 83_257_441, "18": 80_373_285, "19": 58_617_616, "20": 64_444_167,
    "21": 46_709_983, "22": 50_818_468, "X": 156_040_895,
}  # fmt: skip
CONTIGS = tuple(GRCH38)
_BASES = np.array(list("ACGT"), dtype=object)
#: Inserted or deleted bases: 256 random sequences of each length 1..5 (row k - 1: length k).
_TAILS = np.array(
    [["".join(np.random.default_rng(k).choice(list("ACGT"), size=k)) for _ in range(256)] for k in range(1, 6)],
    dtype=object,
)
#: Rows generated at once (~200 MB of transient arrays at alpha = 2).
_BLOCK = 262_144
#: Above this many copies a row's haplotypes are drawn exactly (without replacement), one row at a time.
_EXACT_FROM = 64
#: Portable Roaring header of a one-container (all sample numbers < 65536) array bitmap: cookie 12346 with
#: no run containers, 1 container, key 0 and cardinality - 1 (filled in per row), offset 16.
_ROARING_HEADER = np.frombuffer(bytes.fromhex("3a300000010000000000000010000000"), np.uint8)


@dataclass(frozen=True)
class Generated:
    path: Path
    n_rows: int
    n_samples: int
    singletons: int
    seconds: float


def spectrum(n_samples: int, alpha: float) -> np.ndarray:
    """P(allele count = i) for i = 1 .. 2n-1 (index i - 1), proportional to i^-alpha."""
    counts = np.arange(1, 2 * n_samples, dtype=np.float64)
    weights = counts**-alpha
    probabilities: np.ndarray = weights / weights.sum()
    return probabilities


def roaring_arrays(carriers: np.ndarray, bounds: np.ndarray) -> pa.BinaryArray:
    """Portable Roaring bitmaps of many rows at once: row k holds carriers[bounds[k]:bounds[k + 1]].

    Each row's sorted sample numbers (all < 65536, at least one) are one array container: the 16-byte
    header above and two bytes per member. Byte-for-byte what ``pyroaring.BitMap(...).serialize()`` writes
    for such a set, made with numpy instead of a Python call per row (10^8 of them).
    """
    counts = np.diff(bounds)
    assert counts.min(initial=1) >= 1 and carriers.max(initial=0) < 65536
    sizes = 16 + 2 * counts
    offsets = np.zeros(len(counts) + 1, np.int64)
    np.cumsum(sizes, out=offsets[1:])
    data = np.zeros(int(offsets[-1]), np.uint8)
    starts = offsets[:-1]
    data[starts[:, None] + np.arange(16)] = _ROARING_HEADER
    data[starts + 10] = (counts - 1) & 0xFF
    data[starts + 11] = (counts - 1) >> 8
    row = np.repeat(np.arange(len(counts)), counts)
    member = np.arange(len(carriers)) - bounds[row]
    data.view("<u2")[(starts[row] + 16) // 2 + member] = carriers
    return pa.BinaryArray.from_buffers(
        pa.binary(), len(counts), [None, pa.py_buffer(offsets.astype(np.int32)), pa.py_buffer(data)]
    )


def _alleles(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """REF, ALT, Beacon variant type and length of ``n`` rows: 90% SNVs, 5% deletions, 5% insertions."""
    kind = rng.choice(3, size=n, p=[0.9, 0.05, 0.05])
    first = rng.integers(0, 4, n)
    ref = _BASES[first]
    alt = _BASES[(first + rng.integers(1, 4, n)) % 4]
    lengths = np.ones(n, np.int64)
    types = np.full(n, "SNP", dtype=object)
    for code, name in ((1, "DEL"), (2, "INS")):
        rows = np.flatnonzero(kind == code)
        extra = rng.integers(1, 6, len(rows))
        longer = ref[rows] + _TAILS[extra - 1, rng.integers(0, _TAILS.shape[1], len(rows))]
        if code == 1:
            ref[rows], alt[rows] = longer, ref[rows]
        else:
            alt[rows] = longer
        lengths[rows] = extra
        types[rows] = name
    return ref, alt, types, lengths


def _carriers(
    rng: np.random.Generator, copies: np.ndarray, n_samples: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(allele count, sorted carriers flattened, row bounds) for rows that want ``copies`` haploid copies each.

    Rare rows draw their haplotypes with replacement in one vectorised call and keep the distinct ones (a
    collision, ~i^2/4n, lowers a count by one); rows with many copies draw exactly, row by row.
    """
    haplotypes = 2 * n_samples
    rare = copies < _EXACT_FROM
    rows = np.repeat(np.flatnonzero(rare), copies[rare])
    slots = rng.integers(0, haplotypes, len(rows))
    common = np.flatnonzero(~rare)
    if len(common):
        drawn = [rng.choice(haplotypes, size=int(copies[r]), replace=False) for r in common.tolist()]
        rows = np.concatenate([rows, np.repeat(common, copies[common])])
        slots = np.concatenate([slots, *drawn])
    unique_slots = _distinct(rows.astype(np.int64) * haplotypes + slots)
    ac = np.bincount(unique_slots // haplotypes, minlength=len(copies))
    people = _distinct(unique_slots // 2)  # row * n_samples + sample, since haplotypes = 2 * n_samples
    row_of = people // n_samples
    bounds = np.zeros(len(copies) + 1, np.int64)
    np.cumsum(np.bincount(row_of, minlength=len(copies)), out=bounds[1:])
    return ac, (people % n_samples).astype(np.uint16), bounds


def _distinct(values: np.ndarray) -> np.ndarray:
    """Sorted distinct values (``np.unique`` hashes first, ~5x slower on these arrays)."""
    ordered = np.sort(values)
    keep = np.ones(len(ordered), dtype=bool)
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _block(
    rng: np.random.Generator, contig: str, lo: int, hi: int, n: int, n_samples: int, cdf: np.ndarray
) -> pa.RecordBatch:
    starts = lo + np.sort(rng.choice(hi - lo, size=n, replace=False))  # one ALT per site: no duplicate rows
    ref, alt, types, lengths = _alleles(rng, n)
    copies = np.searchsorted(cdf, rng.random(n), side="right") + 1
    ac, members, bounds = _carriers(rng, np.minimum(copies, 2 * n_samples - 1), n_samples)
    ends = starts + np.where(types == "DEL", lengths + 1, 1)
    an = np.full(n, 2 * n_samples, np.int32)
    columns = [
        pa.array(np.full(n, contig, dtype=object), pa.string()),
        pa.array(starts),
        pa.array(ends),
        pa.array(ref, pa.string()),
        pa.array(alt, pa.string()),
        pa.array(types, pa.string()),
        pa.array(lengths),
        pa.array(ac.astype(np.int32)),
        pa.array(an),
        pa.array(ac / an),
        pa.array(np.diff(bounds).astype(np.int32)),
        roaring_arrays(members, bounds),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=SCHEMA)


def write_synthetic_index(
    out: Path,
    n_variants: int,
    n_samples: int,
    seed: int = 1,
    alpha: float = 2.0,
    contigs: tuple[str, ...] = CONTIGS,
) -> Generated:
    """Write ``out`` (a ``variants.arrow``): ``n_variants`` rows over ``contigs``, sorted as the builder sorts.

    Deterministic in ``seed``. Written to ``out.partial`` and renamed, so a cached file is always whole.
    """
    assert 1 <= n_samples <= 65536
    began = time.perf_counter()
    rng = np.random.default_rng(seed)
    cdf = np.cumsum(spectrum(n_samples, alpha))
    lengths = np.array([GRCH38[c] for c in contigs], np.float64)
    per_contig = np.floor(n_variants * lengths / lengths.sum()).astype(np.int64)
    per_contig[0] += n_variants - per_contig.sum()
    metadata = {
        "format": FORMAT,
        "source": f"synthetic (genoshare_lab.synth.index_layout, seed {seed}, alpha {alpha})",
        "samples": base64.b64encode(BitMap(range(n_samples)).serialize()).decode(),
    }
    partial = out.with_name(out.name + ".partial")
    singletons = 0
    with IndexWriter(partial, json.dumps(metadata)) as writer:
        for contig, rows in zip(contigs, per_contig.tolist(), strict=True):
            length = GRCH38[contig]
            blocks = max(1, -(-rows // _BLOCK))
            edges = np.linspace(0, length, blocks + 1).astype(np.int64)
            sizes = np.diff(np.linspace(0, rows, blocks + 1).astype(np.int64))
            for lo, hi, n in zip(edges[:-1].tolist(), edges[1:].tolist(), sizes.tolist(), strict=True):
                batch = _block(rng, contig, lo, hi, n, n_samples, cdf)
                singletons += int(np.count_nonzero(batch.column("ac").to_numpy() == 1))
                writer.add(batch)
    partial.replace(out)
    return Generated(out, writer.n_rows, n_samples, singletons, time.perf_counter() - began)
