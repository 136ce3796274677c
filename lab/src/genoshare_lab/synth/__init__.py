"""Synthetic cohorts (msprime) with phenotypes, for tests, demos and benchmarks."""

from genoshare_lab.synth.cohort import Cohort, generate_cohort
from genoshare_lab.synth.phenotypes import TERM_LABELS, read_individuals

__all__ = ["TERM_LABELS", "Cohort", "generate_cohort", "read_individuals"]
