"""The attack cohort: beacon members, the attacker's reference panel, and member/non-member targets.

An msprime coalescent over several independent contigs (so the genome is long enough that each target
carries tens of alleles the reference panel has never seen; at 20 Mb the rarest-first attack stalls).
Only what the attacks need is kept, as bit-packed arrays, so 120 Mb of 2,200 people fits in ~100 MB and
is simulated once per configuration and cached.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import msprime
import numpy as np

_BATCH = 4096


@dataclass(frozen=True)
class CohortConfig:
    n_members: int = 1000
    n_panel: int = 1000
    #: Member targets are drawn from the members; as many non-member targets are simulated besides.
    n_targets: int = 200
    n_contigs: int = 6
    contig_length: int = 20_000_000
    mutation_rate: float = 1.25e-8
    recombination_rate: float = 1e-8
    population_size: int = 10_000
    seed: int = 2017

    @property
    def n_individuals(self) -> int:
        return self.n_members + self.n_panel + self.n_targets

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class AttackCohort:
    config: CohortConfig
    #: (sites, ceil(members/8)) packed bits: which members carry the site's derived allele.
    beacon_bits: np.ndarray
    #: Copies of the allele among the members (the Beacon's allele count).
    beacon_ac: np.ndarray
    #: Copies among the reference panel (what the attacker knows of the allele's frequency).
    panel_ac: np.ndarray
    #: (sites, ceil(2 targets/8)) packed bits; targets 0..T-1 are members, T..2T-1 non-members.
    target_bits: np.ndarray
    #: The member index of each member target.
    member_targets: np.ndarray

    @property
    def n_sites(self) -> int:
        return len(self.beacon_ac)

    def carriers(self, site: int) -> np.ndarray:
        """Member indices carrying ``site``."""
        return np.flatnonzero(np.unpackbits(self.beacon_bits[site])[: self.config.n_members])

    def carried_by_target(self, target: int) -> np.ndarray:
        """Sites where target ``target`` carries the derived allele."""
        column = self.target_bits[:, target >> 3]
        return np.flatnonzero((column >> (7 - (target & 7))) & 1)


def _simulate_contig(config: CohortConfig, contig: int) -> msprime.TreeSequence:
    seeds = np.random.SeedSequence([config.seed, contig]).generate_state(2)
    ts = msprime.sim_ancestry(
        samples=config.n_individuals,
        ploidy=2,
        sequence_length=config.contig_length,
        recombination_rate=config.recombination_rate,
        population_size=config.population_size,
        random_seed=int(seeds[0]),
    )
    # Infinite sites, two alleles: every site is one allele a Beacon can be asked about.
    return msprime.sim_mutations(
        ts,
        rate=config.mutation_rate,
        model=msprime.BinaryMutationModel(),
        discrete_genome=False,
        random_seed=int(seeds[1]),
    )


def simulate(config: CohortConfig) -> AttackCohort:
    n, p, t = config.n_members, config.n_panel, config.n_targets
    rng = np.random.default_rng(config.seed)
    member_targets = np.sort(rng.choice(n, size=t, replace=False))
    target_columns = np.concatenate([member_targets, np.arange(n + p, n + p + t)])
    parts: dict[str, list[np.ndarray]] = {"beacon_bits": [], "beacon_ac": [], "panel_ac": [], "target_bits": []}
    for contig in range(config.n_contigs):
        ts = _simulate_contig(config, contig)
        batch = np.zeros((_BATCH, 2 * config.n_individuals), dtype=np.int8)
        filled = 0

        def flush(rows: np.ndarray) -> None:
            dosage = rows[:, 0::2] + rows[:, 1::2]  # sample nodes 2i, 2i+1 are individual i
            members = dosage[:, :n]
            parts["beacon_bits"].append(np.packbits(members > 0, axis=1))
            parts["beacon_ac"].append(members.sum(axis=1, dtype=np.int32))
            parts["panel_ac"].append(dosage[:, n : n + p].sum(axis=1, dtype=np.int32))
            parts["target_bits"].append(np.packbits(dosage[:, target_columns] > 0, axis=1))

        for variant in ts.variants(copy=False):
            batch[filled] = variant.genotypes
            filled += 1
            if filled == _BATCH:
                flush(batch)
                filled = 0
        if filled:
            flush(batch[:filled])
    arrays = {name: np.concatenate(chunks) for name, chunks in parts.items()}
    return AttackCohort(config=config, member_targets=member_targets, **arrays)


def load_or_simulate(config: CohortConfig, work_dir: Path | None) -> AttackCohort:
    """The cohort for ``config``, from ``work_dir`` if it was simulated before (same config, same arrays)."""
    if work_dir is None:
        return simulate(config)
    path = Path(work_dir) / f"cohort-{config.digest()}.npz"
    if path.exists():
        with np.load(path) as stored:
            arrays = {name: stored[name] for name in stored.files}
        return AttackCohort(config=config, **arrays)
    cohort = simulate(config)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp.npz")
    np.savez(
        partial,
        beacon_bits=cohort.beacon_bits,
        beacon_ac=cohort.beacon_ac,
        panel_ac=cohort.panel_ac,
        target_bits=cohort.target_bits,
        member_targets=cohort.member_targets,
    )
    partial.replace(path)  # a crash mid-write never leaves a half cohort to be reused
    return cohort
