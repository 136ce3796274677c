"""Phenotype and demographic annotations for synthetic individuals.

The terms are a small curated list so that Beacon filtering terms (sex, age, HPO, MONDO) have something
realistic to match against; prevalences are invented, not epidemiological.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

# Beacon v2 uses NCIT terms for sex (the model's default ontology for `sex`).
SEX_TERMS: dict[str, str] = {"NCIT:C16576": "female", "NCIT:C20197": "male"}

# (CURIE, label, prevalence in the synthetic cohort)
PHENOTYPIC_FEATURES: tuple[tuple[str, str, float], ...] = (
    ("HP:0001250", "Seizure", 0.05),
    ("HP:0000822", "Hypertension", 0.30),
    ("HP:0001513", "Obesity", 0.20),
    ("HP:0002315", "Headache", 0.15),
    ("HP:0000365", "Hearing impairment", 0.08),
    ("HP:0002099", "Asthma", 0.10),
    ("HP:0003124", "Hypercholesterolemia", 0.25),
    ("HP:0000739", "Anxiety", 0.12),
)

DISEASES: tuple[tuple[str, str, float], ...] = (
    ("MONDO:0005148", "type 2 diabetes mellitus", 0.10),
    ("MONDO:0005147", "type 1 diabetes mellitus", 0.01),
    ("MONDO:0005044", "hypertensive disorder", 0.25),
    ("MONDO:0005027", "epilepsy", 0.02),
    ("MONDO:0004979", "asthma", 0.08),
    ("MONDO:0004975", "Alzheimer disease", 0.03),
    ("MONDO:0007254", "breast cancer", 0.04),
)

TERM_LABELS: dict[str, str] = {
    **SEX_TERMS,
    **{curie: label for curie, label, _ in PHENOTYPIC_FEATURES},
    **{curie: label for curie, label, _ in DISEASES},
}

COLUMNS: tuple[str, ...] = (
    "sample_number",
    "individual_id",
    "sex",
    "age",
    "phenotypic_features",
    "diseases",
)


def _draw_terms(rng: np.random.Generator, n: int, terms: Sequence[tuple[str, str, float]]) -> list[str]:
    """Draw each term independently per individual; a matrix draw keeps the stream order seed-stable."""
    prevalence = np.array([p for _, _, p in terms])
    hits = rng.random((n, len(terms))) < prevalence
    curies = [curie for curie, _, _ in terms]
    return [";".join(c for c, hit in zip(curies, row, strict=True) if hit) for row in hits]


def write_individuals(path: Path, sample_ids: Sequence[str], seed: int) -> None:
    """Write `individuals.tsv`: one row per VCF sample, in VCF column order.

    Multi-valued columns are `;`-separated CURIEs (empty when none); labels are in `TERM_LABELS`.
    `sample_number` is the VCF column index, the default numbering used by the variant index.
    """
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E7]))
    n = len(sample_ids)
    sexes = rng.choice(list(SEX_TERMS), size=n)
    ages = rng.integers(18, 91, size=n)
    features = _draw_terms(rng, n, PHENOTYPIC_FEATURES)
    diseases = _draw_terms(rng, n, DISEASES)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(COLUMNS)
        for i, sample_id in enumerate(sample_ids):
            writer.writerow([i, sample_id, sexes[i], f"P{ages[i]}Y", features[i], diseases[i]])


def read_individuals(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))
