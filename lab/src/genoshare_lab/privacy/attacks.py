"""The attackers and how their success is measured.

A1 (Shringarpure & Bustamante 2015) asks about random alleles the target carries; A2 (Raisaro et al. 2017)
asks about the target's alleles rarest first by the reference panel. Both score the answers with a
likelihood-ratio test whose per-answer likelihoods know the defence in force: the chance of "yes" for a
member and a non-member under a minimum allele count (Poisson tails) and randomised response (flip
probability), and a miss rate ``delta`` for members that covers budget exclusions. Scores are cumulative
sums, so one pass gives the score after every query count.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from genoshare.access.privacy import PrivacySettings
from genoshare_lab.privacy.cohort import AttackCohort

#: Miss rates a best-responding attacker tries for members' carried alleles (budget exclusions look like
#: misses); the reported power is the best of them.
DELTAS = (1e-3, 0.1, 0.3, 0.6)
_EPS = 1e-12


@dataclass(frozen=True)
class QueryPlans:
    """Sites each attacker asks about, per target (rows), in asking order; and the benign researcher's."""

    a1: np.ndarray
    a2: np.ndarray
    #: Random sites the dataset holds: wrong "no" on rare and common alleles.
    benign: np.ndarray
    #: A variant screen's candidates (``screen_candidates``), many absent: false "yes" and precision.
    screen: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @property
    def benign_session(self) -> np.ndarray:
        """What the benign researcher asks in one session: the random present sites, then the screen."""
        return np.concatenate([self.benign, self.screen])


def screen_candidates(cohort: AttackCohort) -> np.ndarray:
    """Candidate variants of a rare-disease screen: the patients' alleles the reference panel has never seen.

    The patients are the non-member targets (people not in the dataset), and a screen keeps the variants
    unseen in the reference, as a clinical pipeline filters on population frequency. The dataset holds
    only some of them (about half at N = 250 and at N = 1,000), so the benign session asks absent alleles
    at the rate a real screen would, and the answers show how often a "yes" on such a candidate is true.
    """
    n = cohort.config.n_targets
    sites = [cohort.carried_by_target(t) for t in range(n, 2 * n)]
    return np.unique(np.concatenate([s[cohort.panel_ac[s] == 0] for s in sites]))


def plan_queries(
    cohort: AttackCohort, max_queries: int, benign_queries: int, seed: int, screen_queries: int = 0
) -> QueryPlans:
    """Each target's A1 and A2 order, the benign random sites, and ``screen_queries`` screen candidates."""
    rng = np.random.default_rng(seed)
    n_targets = 2 * cohort.config.n_targets
    a1 = np.full((n_targets, max_queries), -1, dtype=np.int64)
    a2 = np.full((n_targets, max_queries), -1, dtype=np.int64)
    for target in range(n_targets):
        carried = cohort.carried_by_target(target)
        count = min(max_queries, len(carried))
        a1[target, :count] = rng.choice(carried, size=count, replace=False)
        # Rarest first by the panel, ties in random order (the attacker cannot tell them apart).
        order = np.lexsort((rng.random(len(carried)), cohort.panel_ac[carried]))
        a2[target, :count] = carried[order[:count]]
    if (a1 < 0).any():
        raise ValueError("a target carries fewer alleles than max_queries; simulate more genome")
    segregating = np.flatnonzero(cohort.beacon_ac > 0)
    benign = rng.choice(segregating, size=min(benign_queries, len(segregating)), replace=False)
    candidates = screen_candidates(cohort)
    screen = rng.choice(candidates, size=min(screen_queries, len(candidates)), replace=False)
    return QueryPlans(a1, a2, benign, screen)


def _poisson_cdf(k: np.ndarray | int, lam: np.ndarray) -> np.ndarray:
    """P(X <= k) for X ~ Poisson(lam), elementwise; k small (thresholds), so a direct sum."""
    k = np.broadcast_to(np.asarray(k), lam.shape)
    total = np.zeros_like(lam)
    term = np.exp(-lam)
    for j in range(int(k.max()) + 1 if k.size else 0):
        total = total + np.where(j <= k, term, 0.0)
        term = term * lam / (j + 1)
    return np.where(k < 0, 0.0, total)


#: Counts beyond which an answer without a flip cut-off is taken to flip at the last count's rate (the
#: decayed flip chance there is negligible next to the other terms).
_FLIP_SUM_LIMIT = 64


def yes_probability(lam: np.ndarray, offset: int, settings: PrivacySettings) -> np.ndarray:
    """P(answer "yes") when the beacon holds ``offset`` + Poisson(lam) copies, under threshold and flips.

    Summed count by count with the guard's own ``PrivacySettings.flip_chance``, so a flip probability
    that falls with the count (``flip_decay``) is known to the attacker exactly as the guard applies it.
    """
    m, k = settings.min_allele_count, settings.flip_max_count
    if settings.flip_probability <= 0 and settings.count_epsilon is None:
        return 1.0 - _poisson_cdf(m - 1 - offset, lam)  # P(copies >= m)
    last = max(m - 1, k if k is not None else _FLIP_SUM_LIMIT)
    total = np.zeros_like(lam)
    below = np.zeros_like(lam)  # P(copies <= count so far)
    term = np.exp(-lam)  # P(Poisson = count - offset), advanced once count passes offset
    for count in range(last + 1):
        if count >= offset:
            flip = settings.flip_chance(count)
            total = total + term * (1 - flip if count >= m else flip)
            below = below + term
            term = term * lam / (count - offset + 1)
    tail = np.clip(1.0 - below, 0.0, 1.0)  # copies > last: at or above the threshold
    tail_flip = settings.flip_chance(last + 1)
    return total + tail * (1 - tail_flip)


def lrt_weights(
    panel_ac: np.ndarray, cohort: AttackCohort, settings: PrivacySettings, delta: float
) -> tuple[np.ndarray, np.ndarray]:
    """Log-likelihood ratios (member vs non-member) of a "yes" and of a "no" for each queried allele."""
    n, panel = cohort.config.n_members, cohort.config.n_panel
    freq = (panel_ac + 0.5) / (2 * panel + 1)  # unseen alleles are rare, not absent
    p_non = yes_probability(2 * n * freq, 0, settings)
    p_mem_true = yes_probability((2 * n - 1) * freq, 1, settings)
    p_mem = (1 - delta) * p_mem_true + delta * p_non
    p_non, p_mem = np.clip(p_non, _EPS, 1 - _EPS), np.clip(p_mem, _EPS, 1 - _EPS)
    return np.log(p_mem / p_non), np.log((1 - p_mem) / (1 - p_non))


def scores(
    answers: np.ndarray, plan: np.ndarray, cohort: AttackCohort, settings: PrivacySettings, delta: float
) -> np.ndarray:
    """LRT score of every target after every query count: (targets, queries) cumulative sums.

    Rounded to 1e-9: targets with the same answers on alleles of the same panel counts in another order
    have the same score, and power at 5 % FPR splits such ties; unrounded, the last bits of the sums
    (which depend on the order of addition) would decide them instead and move power by a few points.
    """
    yes_w, no_w = lrt_weights(cohort.panel_ac[plan[:, : answers.shape[1]]], cohort, settings, delta)
    return np.round(np.cumsum(np.where(answers, yes_w, no_w), axis=1), 9)


def power_at_fpr(member: np.ndarray, nonmember: np.ndarray, fpr: float = 0.05) -> float:
    """Power of the Neyman-Pearson test at exactly ``fpr``: threshold from non-member scores, ties split."""
    ordered = np.sort(nonmember)
    threshold = ordered[int(np.ceil((1 - fpr) * len(ordered))) - 1]
    above = np.mean(nonmember > threshold)
    at = np.mean(nonmember == threshold)
    gamma = (fpr - above) / at if at > 0 else 0.0
    return float(np.mean(member > threshold) + gamma * np.mean(member == threshold))


def auc(member: np.ndarray, nonmember: np.ndarray) -> float:
    """P(member score > non-member score), ties counted half (Mann-Whitney)."""
    greater = (member[:, None] > nonmember[None, :]).mean()
    ties = (member[:, None] == nonmember[None, :]).mean()
    return float(greater + 0.5 * ties)


@dataclass(frozen=True)
class Measured:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": round(self.value, 4), "low": round(self.low, 4), "high": round(self.high, 4)}


def bootstrap(member: np.ndarray, nonmember: np.ndarray, seed: int, replicates: int = 200) -> tuple[Measured, Measured]:
    """Power at 5 % FPR and AUC with 95 % percentile-bootstrap intervals (both groups resampled)."""
    rng = np.random.default_rng(seed)
    powers, aucs = [], []
    for _ in range(replicates):
        m = member[rng.integers(0, len(member), len(member))]
        nm = nonmember[rng.integers(0, len(nonmember), len(nonmember))]
        powers.append(power_at_fpr(m, nm))
        aucs.append(auc(m, nm))
    p_low, p_high = np.percentile(powers, [2.5, 97.5])
    a_low, a_high = np.percentile(aucs, [2.5, 97.5])
    return (
        Measured(power_at_fpr(member, nonmember), float(p_low), float(p_high)),
        Measured(auc(member, nonmember), float(a_low), float(a_high)),
    )


def power_curve(score_matrix: np.ndarray, n_targets: int, query_counts: Sequence[int]) -> np.ndarray:
    """Power at 5 % FPR after each of ``query_counts`` queries (members are the first ``n_targets`` rows)."""
    return np.array(
        [power_at_fpr(score_matrix[:n_targets, q - 1], score_matrix[n_targets:, q - 1]) for q in query_counts]
    )


#: A3's statistics: Homer et al. 2008's distance test and the likelihood-ratio test of Sankararaman et
#: al. 2009 on the same counts (the stronger of the two is the attacker's best response).
A3_STATISTICS = ("homer", "lrt")


def a3_scores(
    cohort: AttackCohort,
    plan: np.ndarray,
    threshold: int,
    statistic: str,
    targets: np.ndarray | None = None,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """A3 (Homer et al. 2008): membership from exact allele counts, (targets, queries) cumulative scores.

    The attacker asks the sites of ``plan`` (one row per target, or one row shared by all) and gets the
    exact count ``beacon_ac`` back only where it is at least ``threshold`` (the node's ``exact_count_min``);
    other answers carry no count and add nothing here (A1 and A2 measure what their yes/no gives). Homer's
    statistic sums ``|Y - Pop| - |Y - M|`` over the counted sites, ``Y`` the target's allele fraction, ``Pop``
    the reference panel's frequency and ``M`` the dataset's; the likelihood-ratio statistic sums
    ``x log(M / Pop) + (2 - x) log((1 - M) / (1 - Pop))`` with ``x = 2Y`` copies.

    The cohort keeps who carries an allele, not how many copies, so a carrier's ``Y`` is its expectation
    given the panel frequency ``p``: ``1 / (2 - p)`` (heterozygous unless the allele is common).

    ``counts``: the counts served, one per query (e.g. with differentially private noise), instead of the
    cohort's exact ones; the attacker reads them as if exact (``M = count / 2N``).
    """
    rows = np.arange(2 * cohort.config.n_targets) if targets is None else targets
    if plan.ndim == 1:
        plan = np.broadcast_to(plan, (len(rows), len(plan)))
    n, panel = cohort.config.n_members, cohort.config.n_panel
    served = cohort.beacon_ac[plan] if counts is None else counts
    mixture = served / (2 * n)
    pop = (cohort.panel_ac[plan] + 0.5) / (2 * panel + 1)
    carried = np.stack([np.isin(plan[i], cohort.carried_by_target(int(t))) for i, t in enumerate(rows.tolist())])
    y = np.where(carried, 1.0 / (2.0 - pop), 0.0)
    counted = served >= threshold
    if statistic == "homer":
        each = np.abs(y - pop) - np.abs(y - mixture)
    elif statistic == "lrt":
        m = np.clip(mixture, 0.5 / (2 * n), 1 - 0.5 / (2 * n))
        each = 2 * y * np.log(m / pop) + (2 - 2 * y) * np.log((1 - m) / (1 - pop))
    else:
        raise ValueError(f"unknown A3 statistic {statistic!r}; known: {A3_STATISTICS}")
    return np.round(np.cumsum(np.where(counted, each, 0.0), axis=1), 9)
