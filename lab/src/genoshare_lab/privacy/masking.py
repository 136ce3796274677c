"""Optimisation-based masking (Venkatesaramani et al., Genome Research 2023), as a bound on what it costs.

Their defence chooses a set of alleles whose Beacon answers are flipped (for everyone, always), picked to
minimise the attacker's likelihood-ratio gain under a utility constraint. Against the harness's attackers
the flips that matter are "yes" -> "no" on members' rare alleles: a false "yes" on absent alleles is what
issue 17 wants to get rid of. ``greedy_masking`` runs the greedy version of that choice with the cohort in
hand (the node's own knowledge): while the rarest-first attacker (A2, defence-aware through the miss rate
``delta``) has power above the goal, each member target over the non-members' 95th percentile has its
highest-evidence "yes" answers masked until its score is back under it. The share of rare present alleles
masked is then what a benign researcher is wrongly denied, and since only the 200 attacked members were
protected, a node protecting all of its members must mask about ``n_members / n_member_targets`` times as
many: the figure to compare with the 25 % wrong-"no" budget.
"""

from __future__ import annotations

import numpy as np

from genoshare.access.privacy import PrivacySettings
from genoshare_lab.privacy.attacks import DELTAS, QueryPlans, lrt_weights
from genoshare_lab.privacy.cohort import AttackCohort
from genoshare_lab.privacy.detection import RARE_MAX_COUNT


def member_plans(cohort: AttackCohort, queries: int, seed: int) -> np.ndarray:
    """Every member's alleles rarest first by the panel (ties at random): what the node protects, all of it."""
    rng = np.random.default_rng(seed)
    plans = np.zeros((cohort.config.n_members, queries), dtype=np.int64)
    for member in range(cohort.config.n_members):
        column = cohort.beacon_bits[:, member >> 3]
        carried = np.flatnonzero((column >> (7 - (member & 7))) & 1)
        order = np.lexsort((rng.random(len(carried)), cohort.panel_ac[carried]))[:queries]
        plans[member, : len(order)] = carried[order]
        plans[member, len(order) :] = carried[order[-1]]  # a member with fewer alleles repeats its last
    return plans


def greedy_masking(
    cohort: AttackCohort, plans: QueryPlans, queries: int, seed: int, goal: float = 0.10, rounds: int = 30
) -> tuple[np.ndarray, dict[str, object]]:
    """Alleles to answer "no" for everyone: every member's rarest-first walk scores under the non-members'.

    The node knows every member's genotypes, so it protects all of them (``member_plans``, its own order,
    seeded apart from the attackers'); the non-member targets give the scores a walk must stay under (the
    95th percentile at each query count, for the miss rate that suits the attacker best). Returns the mask
    over sites and the rounds' figures.
    """
    n = cohort.config.n_members
    walks = np.concatenate([member_plans(cohort, queries, seed), plans.a2[cohort.config.n_targets :, :queries]])
    present = cohort.beacon_ac[walks] > 0
    masked = np.zeros(len(cohort.beacon_ac), dtype=bool)
    weights = {d: lrt_weights(cohort.panel_ac[walks], cohort, PrivacySettings(), d) for d in DELTAS}
    history = []
    for _ in range(rounds):
        answers = present & ~masked[walks]
        scored = {d: np.cumsum(np.where(answers, w[0], w[1]), axis=1) for d, w in weights.items()}
        threshold = {d: np.quantile(s[n:], 0.95, axis=0) for d, s in scored.items()}
        over = {d: float(((s[:n] - threshold[d]) > 0).any(axis=1).mean()) for d, s in scored.items()}
        delta = max(over, key=over.__getitem__)
        history.append({"members_over": round(over[delta], 4), "masked": int(masked.sum())})
        if over[delta] <= goal / 4:
            break
        score = scored[delta]
        yes_w, no_w = weights[delta]
        gain = yes_w - no_w  # what masking one "yes" takes off every later score
        for member in range(n):
            excess = float((score[member] - threshold[delta]).max())
            if excess <= 0:
                continue
            mine = np.flatnonzero(answers[member])
            for j in mine[np.argsort(-gain[member, mine])]:
                masked[walks[member, j]] = True
                excess -= float(gain[member, j])
                if excess <= 0:
                    break
    rare_present = (cohort.beacon_ac > 0) & (cohort.beacon_ac <= RARE_MAX_COUNT)
    return masked, {
        "rounds": history,
        "masked_alleles": int(masked.sum()),
        "masked_share_of_rare": round(float(masked[rare_present].mean()), 4),
        "queries": queries,
    }


def masked_answers(cohort: AttackCohort, plans: QueryPlans, masked: np.ndarray, queries: int) -> tuple[np.ndarray, ...]:
    """The exact answers with the mask applied (A1, A2, benign session): what such a Beacon would say."""

    def answer(plan: np.ndarray) -> np.ndarray:
        return (cohort.beacon_ac[plan] > 0) & ~masked[plan]

    return answer(plans.a1[:, :queries]), answer(plans.a2[:, :queries]), answer(plans.benign_session)
