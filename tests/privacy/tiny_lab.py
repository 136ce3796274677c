"""A cohort small enough for the lab's measurements to run in seconds, and the per-node run on it."""

from __future__ import annotations

from dataclasses import replace

from genoshare_lab.privacy import per_node
from genoshare_lab.privacy.cohort import CohortConfig
from genoshare_lab.privacy.harness import HarnessConfig

TINY = CohortConfig(n_members=120, n_panel=120, n_targets=16, n_contigs=2, contig_length=6_000_000, seed=11)

#: ``per_node``'s run on ``TINY``: two nodes (seeds 8 and 9), a few hundred questions each.
TINY_PER_NODE: HarnessConfig = replace(
    per_node.CONFIG,
    cohort=TINY,
    max_queries=300,
    defended_queries=100,
    benign_queries=400,
    screen_queries=100,
    spread_seeds=(9,),
)
