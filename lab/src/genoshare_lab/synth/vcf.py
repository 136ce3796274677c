"""A vectorised phased-GT VCF writer for simulated tree sequences.

`tskit.TreeSequence.write_vcf` formats every genotype in Python; for 1,000 samples x 1M sites that is
most of the generation time. Here each batch of sites becomes one uint8 matrix of GT characters.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import pysam
import tskit

# Source: the `##contig` lines of GRCh38 VCF headers (e.g. GATK/Broad hg38 resources); primary chromosomes
# only for the contigs this generator is expected to be used with.
GRCH38_LENGTHS: dict[str, int] = {
    "19": 58_617_616,
    "20": 64_444_167,
    "21": 46_709_983,
    "22": 50_818_468,
    "X": 156_040_895,
    "Y": 57_227_415,
}

_BATCH = 2048
_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)


def contig_length(contig: str) -> int:
    return GRCH38_LENGTHS[contig.removeprefix("chr")]


def _header(contig: str, length: int, sample_ids: Sequence[str]) -> bytes:
    lines = [
        "##fileformat=VCFv4.2",
        "##source=genoshare_lab.synth (msprime coalescent simulation; synthetic, not real individuals)",
        "##reference=GRCh38",
        f"##contig=<ID={contig},length={length},assembly=GRCh38>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", *sample_ids]),
    ]
    return ("\n".join(lines) + "\n").encode()


def _indel_alleles(rng: np.random.Generator, anchor: str) -> tuple[str, str]:
    """Turn a biallelic SNV into an anchored indel so the data exercise DEL/INS and length queries."""
    size = int(min(rng.geometric(0.4), 20))
    extra = _BASES[rng.integers(0, 4, size=size)].tobytes().decode()
    if rng.random() < 0.5:
        return anchor + extra, anchor
    return anchor, anchor + extra


def _site_batches(ts: tskit.TreeSequence) -> Iterator[tuple[list[int], list[tuple[str, ...]], np.ndarray]]:
    n_haplotypes = ts.num_samples
    positions: list[int] = []
    alleles: list[tuple[str, ...]] = []
    genotypes = np.empty((_BATCH, n_haplotypes), dtype=np.uint8)
    for variant in ts.variants(copy=False):
        genotypes[len(positions)] = variant.genotypes
        positions.append(int(variant.site.position))
        alleles.append(tuple(a for a in variant.alleles if a is not None))
        if len(positions) == _BATCH:
            yield positions, alleles, genotypes
            positions, alleles = [], []
    if positions:
        yield positions, alleles, genotypes[: len(positions)]


def _write_records(
    out: IO[bytes], ts: tskit.TreeSequence, contig: str, indel_fraction: float, rng: np.random.Generator
) -> None:
    n_individuals = ts.num_samples // 2
    for positions, alleles, genotypes in _site_batches(ts):
        # GT text for diploid phased calls with < 10 alleles is exactly "a|b\t" per sample.
        text = np.empty((len(positions), n_individuals, 4), dtype=np.uint8)
        text[:, :, 0] = genotypes[:, 0::2] + ord("0")
        text[:, :, 1] = ord("|")
        text[:, :, 2] = genotypes[:, 1::2] + ord("0")
        text[:, :, 3] = ord("\t")
        text[:, -1, 3] = ord("\n")
        indel_draws = rng.random(len(positions))
        lines = []
        for i, (position, site_alleles) in enumerate(zip(positions, alleles, strict=True)):
            ref, *alts = site_alleles
            if len(alts) == 1 and indel_draws[i] < indel_fraction:
                ref, alt = _indel_alleles(rng, ref)
                alts = [alt]
            # msprime positions are 0-based; VCF POS is 1-based.
            prefix = f"{contig}\t{position + 1}\t.\t{ref}\t{','.join(alts)}\t.\tPASS\t.\tGT\t"
            lines.append(prefix.encode() + text[i].tobytes())
        out.write(b"".join(lines))


def write_bgzipped_vcf(
    path: Path,
    ts: tskit.TreeSequence,
    contig: str,
    sample_ids: Sequence[str],
    indel_fraction: float,
    seed: int,
    threads: int = 2,
) -> None:
    """Write `path` (bgzip) and its tabix index; bgzip's threaded output is byte-identical to serial."""
    length = GRCH38_LENGTHS.get(contig.removeprefix("chr"), int(ts.sequence_length))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x1D5]))
    bgzip_exe = shutil.which("bgzip")
    if bgzip_exe is None:
        raise RuntimeError("bgzip (htslib) is required to write the synthetic VCF")
    with path.open("wb") as sink:
        # Fixed argv, no shell: the only input is our own integer thread count.
        bgzip = subprocess.Popen(  # noqa: S603
            [bgzip_exe, "-@", str(threads), "-c"], stdin=subprocess.PIPE, stdout=sink
        )
        assert bgzip.stdin is not None
        try:
            bgzip.stdin.write(_header(contig, length, sample_ids))
            _write_records(bgzip.stdin, ts, contig, indel_fraction, rng)
        finally:
            bgzip.stdin.close()
            returncode = bgzip.wait()
    if returncode != 0:
        raise RuntimeError(f"bgzip failed with exit code {returncode}")
    pysam.tabix_index(str(path), preset="vcf", force=True)
