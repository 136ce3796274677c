"""Fixtures for the htsget range engine: the shipped demo files and bigger synthetic ones.

The synthetic files are built once per session with pysam/htslib (never with the code under test), big
enough to span many BGZF blocks, many bins at several levels, and many CRAM containers.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path

import pysam
import pytest
from htsget_oracle import Dataset

from genoshare.formats import FileFormat
from genoshare.htsget.ranges import IndexCache

# No CRAM test may fetch a reference over the network.
os.environ["REF_PATH"] = ":"
os.environ.pop("REF_CACHE", None)


READ_CONTIGS = {"chrA": 3_000_000, "chrB": 1_500_000, "chrC": 600_000, "chrEmpty": 100_000}
READS_PER_CONTIG = {"chrA": 70_000, "chrB": 35_000, "chrC": 15_000}
UNPLACED_READS = 3_000
VARIANT_CONTIGS = {"chr1": 2_000_000, "chr2": 800_000, "chr3": 100_000}
VARIANTS_PER_CONTIG = {"chr1": 15_000, "chr2": 5_000}
READ_LENGTH = 50


@pytest.fixture(scope="session")
def cache() -> IndexCache:
    return IndexCache(maxsize=32)


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("htsget-synthetic")


@pytest.fixture(scope="session")
def synthetic_reads(synthetic_dir: Path) -> dict[str, Dataset]:
    """A sorted BAM (BAI + CSI with 4 kbp windows) and a CRAM with small slices, from one FASTA."""
    rng = random.Random(20240611)
    fasta = synthetic_dir / "ref.fa"
    sequences = {name: "".join(rng.choices("ACGT", k=length)) for name, length in READ_CONTIGS.items()}
    with open(fasta, "w") as out:
        for name, seq in sequences.items():
            out.write(f">{name}\n")
            out.writelines(seq[i : i + 60] + "\n" for i in range(0, len(seq), 60))
    pysam.faidx(str(fasta))

    bam = synthetic_dir / "reads.bam"
    header = {"HD": {"VN": "1.6", "SO": "coordinate"}, "SQ": [{"SN": n, "LN": ln} for n, ln in READ_CONTIGS.items()]}
    with pysam.AlignmentFile(str(bam), "wb", header=header) as out:
        for tid, (name, count) in enumerate(READS_PER_CONTIG.items()):
            for number, read in enumerate(_reads_on(rng, tid, sequences[name], count)):
                read.query_name = f"{name}-{number}"
                out.write(read)
        for number in range(UNPLACED_READS):
            read = pysam.AlignedSegment(out.header)
            read.query_name = f"unplaced-{number}"
            read.flag = 4
            read.reference_id = read.next_reference_id = -1
            read.reference_start = read.next_reference_start = -1
            read.query_sequence = "".join(rng.choices("ACGT", k=READ_LENGTH))
            read.query_qualities = pysam.qualitystring_to_array("I" * READ_LENGTH)
            out.write(read)
    pysam.index(str(bam))
    csi = synthetic_dir / "reads.bam.csi"
    pysam.samtools.index("-c", "-m", "12", str(bam), "-o", str(csi))

    cram = synthetic_dir / "reads.cram"
    pysam.samtools.view(
        "-C",
        "-T",
        str(fasta),
        "--output-fmt-option",
        "seqs_per_slice=2000",
        "-o",
        str(cram),
        str(bam),
        catch_stdout=False,
    )
    pysam.samtools.index(str(cram))
    return {
        "bai": Dataset("synthetic-bam-bai", FileFormat.BAM, bam, Path(f"{bam}.bai"), READ_CONTIGS),
        "csi": Dataset("synthetic-bam-csi", FileFormat.BAM, bam, csi, READ_CONTIGS),
        "cram": Dataset("synthetic-cram", FileFormat.CRAM, cram, Path(f"{cram}.crai"), READ_CONTIGS, fasta),
    }


def _reads_on(rng: random.Random, tid: int, sequence: str, count: int) -> Iterator[pysam.AlignedSegment]:
    """Sorted reads: mostly 50M, some spliced across up to 200 kbp (higher bins), some placed unmapped."""
    header = pysam.AlignmentHeader.from_references(list(READ_CONTIGS), list(READ_CONTIGS.values()))
    qualities = pysam.qualitystring_to_array("I" * READ_LENGTH)
    for start in sorted(rng.randrange(0, len(sequence) - 400_000) for _ in range(count)):
        read = pysam.AlignedSegment(header)
        read.reference_id = read.next_reference_id = tid
        read.reference_start = read.next_reference_start = start
        roll = rng.random()
        if roll < 0.01:
            read.flag = 4 | 1 | 8  # placed unmapped: has a position, no alignment
            read.query_sequence = sequence[start : start + READ_LENGTH]
        elif roll < 0.02:
            gap = rng.randrange(1_000, 200_000)
            read.flag = 0
            read.mapping_quality = 60
            read.cigarstring = f"20M{gap}N30M"
            read.query_sequence = sequence[start : start + 20] + sequence[start + 20 + gap : start + 50 + gap]
        else:
            read.flag = 16 if roll > 0.5 else 0
            read.mapping_quality = 60
            read.cigarstring = f"{READ_LENGTH}M"
            read.query_sequence = sequence[start : start + READ_LENGTH]
        read.query_qualities = qualities
        yield read


@pytest.fixture(scope="session")
def synthetic_variants(synthetic_dir: Path) -> dict[str, Dataset]:
    """A bgzip-ed VCF (lines straddle blocks) with TBI and CSI, and a BCF with CSI, from the same records."""
    rng = random.Random(7)
    text = synthetic_dir / "variants.vcf"
    with open(text, "w") as out:
        out.write("##fileformat=VCFv4.3\n")
        out.writelines(f"##contig=<ID={name},length={length}>\n" for name, length in VARIANT_CONTIGS.items())
        out.write('##INFO=<ID=END,Number=1,Type=Integer,Description="End position">\n')
        out.write('##INFO=<ID=SVTYPE,Number=1,Type=String,Description="SV type">\n')
        out.write("#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n")
        for name, count in VARIANTS_PER_CONTIG.items():
            for number, pos in enumerate(
                sorted(rng.randrange(1, VARIANT_CONTIGS[name] - 400_000) for _ in range(count))
            ):
                out.write(_variant_line(rng, name, number, pos))
    vcf = Path(pysam.tabix_index(str(text), preset="vcf", keep_original=True, force=True))
    pysam.tabix_index(str(vcf), preset="vcf", force=True, csi=True, min_shift=11)

    bcf = synthetic_dir / "variants.bcf"
    with pysam.VariantFile(str(vcf)) as source, pysam.VariantFile(str(bcf), "wb", header=source.header) as sink:
        for record in source:
            sink.write(record)
    pysam.tabix_index(str(bcf), preset="vcf", force=True, csi=True)
    return {
        "tbi": Dataset("synthetic-vcf-tbi", FileFormat.VCF, vcf, Path(f"{vcf}.tbi"), VARIANT_CONTIGS),
        "csi": Dataset("synthetic-vcf-csi", FileFormat.VCF, vcf, Path(f"{vcf}.csi"), VARIANT_CONTIGS),
        "bcf": Dataset("synthetic-bcf-csi", FileFormat.BCF, bcf, Path(f"{bcf}.csi"), VARIANT_CONTIGS),
    }


def _variant_line(rng: random.Random, chrom: str, number: int, pos: int) -> str:
    roll = rng.random()
    if roll < 0.02:
        end = pos + rng.randrange(1_000, 300_000)
        return f"{chrom}\t{pos}\tsv{number}\tN\t<DEL>\t50\tPASS\tSVTYPE=DEL;END={end}\n"
    ref = "".join(rng.choices("ACGT", k=rng.choice([1, 1, 1, 2, 5, 20])))
    alt = rng.choice([b for b in "ACGT" if b != ref[0]])
    return f"{chrom}\t{pos}\tv{number}\t{ref}\t{alt}\t30\tPASS\t.\n"
