from __future__ import annotations

from pathlib import Path

import pytest

from genoshare.index.build import IndexSummary, build_variant_index
from genoshare_lab.synth import Cohort, generate_cohort

# Dense sites on a short region: plenty of multi-allelic records and overlapping indels.
N_INDIVIDUALS = 50
N_VARIANTS = 2000
LENGTH = 20_000


@pytest.fixture(scope="session")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> Cohort:
    return generate_cohort(tmp_path_factory.mktemp("cohort"), N_INDIVIDUALS, LENGTH, seed=11, n_variants=N_VARIANTS)


@pytest.fixture(scope="session")
def progress_calls() -> list[tuple[int, int]]:
    return []


@pytest.fixture(scope="session")
def index_summary(
    cohort: Cohort, tmp_path_factory: pytest.TempPathFactory, progress_calls: list[tuple[int, int]]
) -> IndexSummary:
    out: Path = tmp_path_factory.mktemp("index")
    return build_variant_index(cohort.vcf_path, out, None, lambda n, b: progress_calls.append((n, b)))
