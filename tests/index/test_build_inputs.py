"""The builder's BCF decoding on the awkward corners of real VCFs, checked against pysam.

The synthetic cohort is diploid, fully called and GT-only; these inputs add what it lacks: other FORMAT fields
after GT, missing and half-missing calls, haploid samples beside diploid ones, `*` alleles, symbolic alleles
with END, sites without ALT or without GT, and a record with so many alleles that BCF stores GT as int16.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow.ipc as ipc
import pysam
import pytest
from pyroaring import BitMap

from genoshare.index.build import build_variant_index
from genoshare.index.schema import classify

SAMPLES = ["S1", "S2", "S3", "S4"]
MANY_ALTS = ["A" + "C" * n for n in range(1, 71)]
HEADER = """##fileformat=VCFv4.2
##contig=<ID=1,length=100000>
##contig=<ID=2,length=100000>
##INFO=<ID=END,Number=1,Type=Integer,Description="End position">
##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">
##FORMAT=<ID=DP,Number=1,Type=Integer,Description="Depth">
##FORMAT=<ID=AD,Number=R,Type=Integer,Description="Allelic depths">
"""
RECORDS = [
    "1\t100\trs1\tA\tG\t50\tPASS\t.\tGT:DP\t0/1:10\t./.:0\t1|1:5\t0/0:3",
    "1\t150\t.\tAT\tA,ATT,*\t.\t.\t.\tGT:AD\t1/2:1,2,3,0\t3/3:0,0,0,5\t0|2:.\t./1:1,1,0,0",
    "1\t200\t.\tC\t<DEL>\t.\t.\tEND=400\tGT\t0/1\t1\t0\t.",
    "1\t300\t.\tG\t.\t.\t.\t.\tGT\t0/0\t0/0\t0/0\t0/0",
    "1\t310\t.\tG\tT\t.\t.\t.\tDP\t1\t2\t3\t4",
    f"1\t320\t.\tA\t{','.join(MANY_ALTS)}\t.\t.\t.\tGT:AD\t0/66:1\t70/1:2\t./.:.\t3/3:4",
    "1\t330\t.\tT\tC\t.\t.\t.\tGT\t0/1\t1/1\t0/0\t0/1",
    "2\t10\t.\tACGT\tA,AC,TCGT\t.\t.\t.\tGT\t0/1\t2/3\t1/0\t0/0",
]


def _truth(path: Path) -> dict[tuple[str, int, str, str], tuple[int, int, int, BitMap]]:
    """(contig, start, ref, alt) -> (end, ac, an, carriers) for every classifiable allele, read by pysam."""
    out = {}
    with pysam.VariantFile(str(path)) as vcf:
        for rec in vcf:
            gts = [s["GT"] if "GT" in rec.format else () for s in rec.samples.values()]
            an = sum(a is not None for gt in gts for a in gt)
            for k, alt in enumerate(rec.alts or (), start=1):
                if classify(rec.ref, alt, rec.start, rec.stop) is None:
                    continue
                carriers = BitMap(i for i, gt in enumerate(gts) if k in gt)
                ac = sum(a == k for gt in gts for a in gt)
                out[(rec.chrom, rec.start, rec.ref, alt)] = (rec.stop, ac, an, carriers)
    return out


@pytest.fixture(scope="module")
def vcf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("inputs") / "awkward.vcf"
    path.write_text(HEADER + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t" + "\t".join(SAMPLES) + "\n")
    with path.open("a") as handle:
        handle.write("\n".join(RECORDS) + "\n")
    return path


def _rows(index: Path) -> dict[tuple[str, int, str, str], tuple[int, int, int, BitMap]]:
    table = ipc.open_file(index).read_all().to_pylist()
    for row in table:
        assert row["carrier_count"] == len(BitMap.deserialize(row["carriers"]))
        assert row["af"] == (row["ac"] / row["an"] if row["an"] else 0.0)
    return {
        (r["contig"], r["start"], r["ref"], r["alt"]): (r["end"], r["ac"], r["an"], BitMap.deserialize(r["carriers"]))
        for r in table
    }


def test_awkward_records_match_pysam(vcf: Path, tmp_path: Path) -> None:
    summary = build_variant_index(vcf, tmp_path)
    truth = _truth(vcf)
    assert _rows(summary.path) == truth
    assert summary.n_records == len(RECORDS)
    assert summary.n_rows == len(truth)
    assert summary.contigs == ("1", "2")
    assert summary.bytes_read == vcf.stat().st_size
    assert truth[("1", 199, "C", "<DEL>")][0] == 400
    assert truth[("1", 319, "A", MANY_ALTS[65])][1:3] == (1, 6)


def test_same_index_from_vcf_gz_and_bcf(vcf: Path, tmp_path: Path) -> None:
    expected = ipc.open_file(build_variant_index(vcf, tmp_path / "plain").path).read_all()
    for suffix, mode in ((".vcf.gz", "wz"), (".bcf", "wb")):
        converted = tmp_path / ("awkward" + suffix)
        with pysam.VariantFile(str(vcf)) as src, pysam.VariantFile(str(converted), mode, header=src.header) as dst:
            for rec in src:
                dst.write(rec)
        got = ipc.open_file(build_variant_index(converted, tmp_path / suffix).path).read_all()
        assert got.equals(expected)  # same rows, same bitmaps byte for byte (metadata names the source)


def test_undeclared_header_ids_fall_back_to_cyvcf2(vcf: Path, tmp_path: Path) -> None:
    """bcftools refuses to write BCF for ids the header lacks; the index must still be built, and the same."""
    expected = _rows(build_variant_index(vcf, tmp_path / "declared").path)
    sloppy = tmp_path / "sloppy.vcf"
    lines = vcf.read_text().splitlines(keepends=True)
    sloppy.write_text("".join(line for line in lines if not line.startswith(("##contig=<ID=2", "##FORMAT=<ID=DP"))))
    assert _rows(build_variant_index(sloppy, tmp_path / "sloppy").path) == expected


def test_unreadable_input_fails_without_partial_file(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.vcf.gz"
    garbage.write_bytes(b"\x1f\x8b\x08\x04" + bytes(range(256)) * 8)
    with pytest.raises(ValueError, match="bcftools"):
        build_variant_index(garbage, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
