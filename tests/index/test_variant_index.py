"""Index answers checked against an independent reading of the same VCF with pysam."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pysam
import pytest
from pyroaring import BitMap

from genoshare.index.build import IndexSummary, build_variant_index
from genoshare.index.serving import QueryResult, VariantIndex
from genoshare_lab.synth import Cohort


@dataclass(frozen=True)
class Allele:
    start: int
    end: int
    ref: str
    alt: str
    carriers: frozenset[int]  # VCF column numbers
    ac: int
    an: int

    @property
    def key(self) -> tuple[int, str, str]:
        return (self.start, self.ref, self.alt)

    @property
    def length(self) -> int:
        return len(self.ref) if len(self.ref) == len(self.alt) else abs(len(self.ref) - len(self.alt))


def _alleles(records: list[pysam.VariantRecord]) -> list[Allele]:
    out = []
    for rec in records:
        gts = [s["GT"] for s in rec.samples.values()]
        an = sum(a is not None for gt in gts for a in gt)
        for k, alt in enumerate(rec.alts, start=1):
            carriers = frozenset(i for i, gt in enumerate(gts) if k in gt)
            ac = sum(a == k for gt in gts for a in gt)
            out.append(Allele(rec.start, rec.stop, rec.ref, alt, carriers, ac, an))
    return out


@pytest.fixture(scope="module")
def truth(cohort: Cohort) -> list[Allele]:
    with pysam.VariantFile(str(cohort.vcf_path)) as vcf:
        return _alleles(list(vcf.fetch("20")))


@pytest.fixture(scope="module")
def index(index_summary: IndexSummary) -> VariantIndex:
    return VariantIndex({"cohort": index_summary.path.parent})


def _range_truth(cohort: Cohort, start: int, end: int) -> list[tuple[int, str, str]]:
    with pysam.VariantFile(str(cohort.vcf_path)) as vcf:
        return sorted(a.key for a in _alleles(list(vcf.fetch("20", start, end))))


def test_summary_and_progress(
    index_summary: IndexSummary, truth: list[Allele], cohort: Cohort, progress_calls: list[tuple[int, int]]
) -> None:
    assert index_summary.n_records == cohort.n_sites
    assert index_summary.n_rows == len(truth)
    assert index_summary.contigs == ("20",)
    assert progress_calls[-1] == (cohort.n_sites, cohort.vcf_path.stat().st_size)


def test_sequence_queries_match_pysam(index: VariantIndex, truth: list[Allele]) -> None:
    for allele in random.Random(1).sample(truth, 200):
        result = index.sequence_query("20", allele.start, allele.alt, allele.ref)
        (row,) = result.rows()
        assert (row.start, row.end, row.ref, row.alt) == (allele.start, allele.end, allele.ref, allele.alt)
        assert (row.ac, row.an, row.carrier_count) == (allele.ac, allele.an, len(allele.carriers))
        assert row.af == pytest.approx(allele.ac / allele.an)
        assert result.carriers() == BitMap(allele.carriers)


def test_sequence_query_wildcard_and_misses(index: VariantIndex, truth: list[Allele]) -> None:
    snp = next(a for a in truth if len(a.ref) == 1 and len(a.alt) == 1)
    assert index.sequence_query("chr20", snp.start, snp.alt, "N").total >= 1
    assert index.sequence_query("20", snp.start, snp.alt, snp.ref).total == 1
    assert index.sequence_query("20", snp.start + 100_000, snp.alt).total == 0
    assert index.sequence_query("21", snp.start, snp.alt).total == 0


def test_range_queries_match_pysam_fetch(index: VariantIndex, cohort: Cohort) -> None:
    rng = random.Random(2)
    for _ in range(40):
        start = rng.randrange(0, cohort.sequence_length)
        end = start + rng.randrange(1, 600)
        result = index.range_query("20", start, end)
        got = sorted((r.start, r.ref, r.alt) for r in result.rows())
        assert got == _range_truth(cohort, start, end)


def test_range_pagination(index: VariantIndex) -> None:
    result = index.range_query("20", 0, 5_000)
    every = result.rows()
    assert result.total == len(every) > 20
    assert result.rows(skip=5, limit=7) == every[5:12]
    assert [r.start for r in every] == sorted(r.start for r in every)


def test_length_and_type_filters(index: VariantIndex, truth: list[Allele]) -> None:
    def keys(result: QueryResult) -> list[tuple[int, str, str]]:
        return sorted((r.start, r.ref, r.alt) for r in result.rows())

    whole = (0, 100_000)
    assert keys(index.range_query("20", *whole, min_length=2, max_length=4)) == sorted(
        a.key for a in truth if 2 <= a.length <= 4
    )
    deletions = sorted(a.key for a in truth if len(a.alt) < len(a.ref))
    assert keys(index.range_query("20", *whole, variant_type="DEL")) == deletions
    indels = sorted(a.key for a in truth if len(a.alt) != len(a.ref))
    assert keys(index.range_query("20", *whole, variant_type="INDEL")) == indels
    some = truth[len(truth) // 2]
    assert (some.start, some.ref, some.alt) in keys(index.range_query("20", *whole, alternate_bases=some.alt))


def test_bracket_queries(index: VariantIndex, truth: list[Allele]) -> None:
    rng = random.Random(3)
    for _ in range(30):
        s1 = rng.randrange(0, 19_000)
        s2 = s1 + rng.randrange(0, 300)
        e1 = s1 + rng.randrange(0, 10)
        e2 = e1 + rng.randrange(0, 400)
        got = sorted((r.start, r.ref, r.alt) for r in index.bracket_query("20", (s1, s2), (e1, e2)).rows())
        assert got == sorted(a.key for a in truth if s1 <= a.start <= s2 and e1 <= a.end <= e2)


def test_allowed_samples_restrict_counts(index: VariantIndex, truth: list[Allele], cohort: Cohort) -> None:
    rng = random.Random(4)
    allowed = BitMap(rng.sample(range(len(cohort.sample_ids)), 15))
    withdrawn = BitMap(rng.sample(range(len(cohort.sample_ids)), 5))
    consenting = BitMap(range(len(cohort.sample_ids))) - withdrawn
    for allele in rng.sample(truth, 100):
        result = index.sequence_query("20", allele.start, allele.alt, allele.ref)
        (row,) = result.rows(allowed=allowed)
        assert row.carrier_count == len(allele.carriers & set(allowed))
        assert result.carrier_count(consenting) == len(allele.carriers - set(withdrawn))
    window = index.range_query("20", 1_000, 3_000)
    expected = set().union(*(a.carriers for a in truth if a.start < 3_000 and a.end > 1_000))
    assert window.carriers(allowed) == BitMap(expected) & allowed


def test_sample_numbers_and_several_datasets(
    cohort: Cohort, index_summary: IndexSummary, truth: list[Allele], tmp_path: Path
) -> None:
    numbers = {sample: 1000 + 3 * i for i, sample in enumerate(cohort.sample_ids)}
    build_variant_index(cohort.vcf_path, tmp_path, numbers)
    index = VariantIndex({"first": index_summary.path, "renumbered": [tmp_path / "variants.arrow"]})
    common = max(truth, key=lambda a: len(a.carriers))
    first, renumbered = index.sequence_query("20", common.start, common.alt, common.ref).rows()
    assert (first.dataset_id, renumbered.dataset_id) == ("first", "renumbered")
    assert first.carrier_count == renumbered.carrier_count
    only = index.sequence_query("20", common.start, common.alt, common.ref, datasets=["renumbered"])
    assert only.carriers() == BitMap(1000 + 3 * i for i in common.carriers)


def test_unsorted_input_is_rejected(cohort: Cohort, tmp_path: Path) -> None:
    with pysam.VariantFile(str(cohort.vcf_path)) as vcf:
        header = str(vcf.header)
        lines = [str(r) for r in vcf]
    unsorted = tmp_path / "unsorted.vcf"
    unsorted.write_text(header + "".join([lines[1], lines[0], *lines[2:10]]))
    with pytest.raises(ValueError, match="not sorted"):
        build_variant_index(unsorted, tmp_path / "out")
    assert list((tmp_path / "out").iterdir()) == []
