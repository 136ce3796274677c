from __future__ import annotations

import re
from pathlib import Path

import pysam

from genoshare_lab.synth import TERM_LABELS, Cohort, generate_cohort, read_individuals
from genoshare_lab.synth.phenotypes import COLUMNS, DISEASES, PHENOTYPIC_FEATURES, SEX_TERMS


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate_cohort(tmp_path / "a", 12, 50_000, seed=3, n_variants=300)
    b = generate_cohort(tmp_path / "b", 12, 50_000, seed=3, n_variants=300)
    c = generate_cohort(tmp_path / "c", 12, 50_000, seed=4, n_variants=300)
    assert a.vcf_path.read_bytes() == b.vcf_path.read_bytes()
    assert a.individuals_path.read_bytes() == b.individuals_path.read_bytes()
    assert a.vcf_path.read_bytes() != c.vcf_path.read_bytes()
    assert a.n_sites == 300


def test_vcf_shape(cohort: Cohort) -> None:
    assert cohort.tabix_path.exists()
    with pysam.VariantFile(str(cohort.vcf_path)) as vcf:
        assert list(vcf.header.samples) == list(cohort.sample_ids)
        assert vcf.header.contigs["20"].length == 64_444_167
        records = list(vcf.fetch("20"))
    assert len(records) == cohort.n_sites
    positions = [r.pos for r in records]
    assert positions == sorted(set(positions))
    assert all(re.fullmatch("[ACGT]+", a) for r in records for a in r.alleles)
    assert any(len(r.alts) > 1 for r in records)
    assert any(len(r.ref) != len(r.alts[0]) for r in records)
    assert all(s["GT"][0] is not None and len(s["GT"]) == 2 for s in records[0].samples.values())


def test_individuals_file(cohort: Cohort) -> None:
    rows = read_individuals(cohort.individuals_path)
    assert len(rows) == len(cohort.sample_ids)
    assert tuple(rows[0]) == COLUMNS
    assert [r["individual_id"] for r in rows] == list(cohort.sample_ids)
    assert [int(r["sample_number"]) for r in rows] == list(range(len(rows)))
    features = {c for c, _, _ in PHENOTYPIC_FEATURES}
    diseases = {c for c, _, _ in DISEASES}
    for row in rows:
        assert row["sex"] in SEX_TERMS
        assert re.fullmatch(r"P\d+Y", row["age"])
        assert 18 <= int(row["age"][1:-1]) <= 90
        assert set(filter(None, row["phenotypic_features"].split(";"))) <= features
        assert set(filter(None, row["diseases"].split(";"))) <= diseases
    assert all(t in TERM_LABELS for r in rows for t in filter(None, r["diseases"].split(";")))
    assert any(r["phenotypic_features"] for r in rows)
