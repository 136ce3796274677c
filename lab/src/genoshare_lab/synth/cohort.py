"""Synthetic cohorts for tests and benchmarks.

A coalescent simulation, so allele frequencies and LD look like a real population rather than coin flips.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import msprime
import numpy as np

from genoshare_lab.synth.phenotypes import write_individuals
from genoshare_lab.synth.vcf import GRCH38_LENGTHS, write_bgzipped_vcf


@dataclass(frozen=True)
class Cohort:
    vcf_path: Path
    individuals_path: Path
    sample_ids: tuple[str, ...]
    contig: str
    sequence_length: int
    n_sites: int
    seed: int

    @property
    def tabix_path(self) -> Path:
        return self.vcf_path.with_name(self.vcf_path.name + ".tbi")


def _simulate(
    n_individuals: int,
    sequence_length: int,
    seed: int,
    n_variants: int | None,
    mutation_rate: float,
    recombination_rate: float,
    population_size: int,
) -> msprime.TreeSequence:
    seeds = np.random.SeedSequence(seed).generate_state(3)
    ts = msprime.sim_ancestry(
        samples=n_individuals,
        ploidy=2,
        sequence_length=sequence_length,
        recombination_rate=recombination_rate,
        population_size=population_size,
        random_seed=int(seeds[0]),
    )
    if n_variants is not None:
        # Expected mutations = rate x total branch length; 10 % headroom for recurrent hits on one site,
        # then thin to the exact count so benchmarks get the size they ask for.
        branch_length = ts.segregating_sites(mode="branch", span_normalise=False)
        mutation_rate = 1.1 * n_variants / branch_length
    # HKY with a transition bias gives a human-like Ts/Tv (~2) instead of JC69's 0.5.
    model = msprime.HKY(kappa=4.0)
    mts = msprime.sim_mutations(ts, rate=mutation_rate, model=model, random_seed=int(seeds[1]))
    if n_variants is not None and mts.num_sites > n_variants:
        rng = np.random.default_rng(int(seeds[2]))
        drop = rng.choice(mts.num_sites, size=mts.num_sites - n_variants, replace=False)
        mts = mts.delete_sites(np.sort(drop))
    return mts


def generate_cohort(
    out_dir: Path | str,
    n_individuals: int,
    sequence_length: int,
    seed: int,
    contig: str = "20",
    *,
    n_variants: int | None = None,
    mutation_rate: float = 1.25e-8,
    recombination_rate: float = 1e-8,
    population_size: int = 10_000,
    indel_fraction: float = 0.05,
    sample_prefix: str = "GS",
) -> Cohort:
    """Write `cohort.vcf.gz` (+ `.tbi`) and `individuals.tsv` into `out_dir`.

    With `n_variants`, the mutation rate is chosen to yield exactly that many VCF records (at most, if the
    genealogy is too short); otherwise `mutation_rate` applies. Same arguments -> same bytes.
    """
    known_length = GRCH38_LENGTHS.get(contig.removeprefix("chr"))
    if known_length is not None and sequence_length > known_length:
        raise ValueError(f"sequence_length {sequence_length} exceeds GRCh38 {contig} length {known_length}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mts = _simulate(
        n_individuals, sequence_length, seed, n_variants, mutation_rate, recombination_rate, population_size
    )
    width = max(5, len(str(n_individuals)))
    sample_ids = tuple(f"{sample_prefix}{i + 1:0{width}d}" for i in range(n_individuals))
    vcf_path = out / "cohort.vcf.gz"
    write_bgzipped_vcf(vcf_path, mts, contig, sample_ids, indel_fraction, seed)
    individuals_path = out / "individuals.tsv"
    write_individuals(individuals_path, sample_ids, seed)
    return Cohort(
        vcf_path=vcf_path,
        individuals_path=individuals_path,
        sample_ids=sample_ids,
        contig=contig,
        sequence_length=sequence_length,
        n_sites=mts.num_sites,
        seed=seed,
    )
