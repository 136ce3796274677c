"""Issue 17's candidate defences, asked through the node's Beacon service (``BeaconService.query``).

What a steward choosing them in ``beacon_policy["privacy"]`` would check:

- **noise concentrated on present rare alleles** (a low ``false_yes_probability``, the flips on singletons):
  alleles the dataset does not hold are affirmed at the low rate set, not at the flip rate; alleles above
  the flip cut-off are never denied;
- **differentially private counts** (``count_epsilon``, the truncated geometric mechanism): the noisy
  counts never leave their range (never below 0), are unbiased away from 0, and the yes/no decided on
  them affirms an absent allele and denies a singleton at ``alpha / (1 + alpha)``; the attackers of the
  harness know that rate as the guard applies it (else their measured power would be flattered);
- a policy that combines the two noises, or sets a meaningless epsilon, is refused.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
from pyroaring import BitMap

from genoshare.access.granularity import Granularity
from genoshare.access.passports import Identity
from genoshare.access.policy import Decision
from genoshare.access.privacy import PrivacyGuard, PrivacySettings, truncated_geometric
from genoshare.access.privacy_state import MemoryPrivacyState
from genoshare.errors import InvalidInput
from genoshare.store.models import Dataset
from genoshare_lab.privacy.attacks import yes_probability
from genoshare_lab.privacy.cohort import AttackCohort, CohortConfig, load_or_simulate
from genoshare_lab.privacy.node_target import NodeBeacon, build_node

TINY = CohortConfig(n_members=120, n_panel=120, n_targets=16, n_contigs=2, contig_length=6_000_000, seed=11)
CONCENTRATED = PrivacySettings(flip_probability=0.3, flip_max_count=5, flip_decay=0.4, false_yes_probability=0.1)
GEOMETRIC = PrivacySettings(count_epsilon=2.2)


@pytest.fixture(scope="module")
def cohort() -> AttackCohort:
    return load_or_simulate(TINY, None)


@pytest.fixture(scope="module")
def node_dir(cohort: AttackCohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_node(cohort, tmp_path_factory.mktemp("attack-node"))


def beacon_yes(node_dir: Path, settings: PrivacySettings, sites: np.ndarray, seed: int) -> np.ndarray:
    """Each site asked by a researcher of its own through the node's Beacon (no budget: one question each)."""
    beacon = NodeBeacon(node_dir, settings, seed=seed, state="memory")
    try:
        return np.array([beacon.session(f"user-{site}", np.array([site]))[0] for site in sites.tolist()])
    finally:
        beacon.close()


def sites_with(cohort: AttackCohort, low: int, high: int, n: int) -> np.ndarray:
    found = np.flatnonzero((cohort.beacon_ac >= low) & (cohort.beacon_ac <= high))
    assert len(found) >= n, (low, high, len(found))
    return np.random.default_rng(1).choice(found, size=n, replace=False)


def test_concentrated_noise_affirms_few_absent_alleles_and_never_denies_common_ones(
    cohort: AttackCohort, node_dir: Path
) -> None:
    absent = sites_with(cohort, 0, 0, 300)  # alleles of the panel and the targets that no member carries
    common = sites_with(cohort, 6, 10**6, 150)
    singletons = sites_with(cohort, 1, 1, 300)
    said = beacon_yes(node_dir, CONCENTRATED, np.concatenate([absent, common, singletons]), seed=3)
    false_yes, common_yes, singleton_yes = said[:300].mean(), said[300:450], said[450:].mean()
    # 10 % set; the default's 45 % (or the 30 % flip rate) would fail this.
    assert false_yes == pytest.approx(0.1, abs=0.055)
    assert common_yes.all()  # above flip_max_count: the truth, always
    assert 1 - singleton_yes == pytest.approx(0.3, abs=0.08)  # the noise is spent on present singletons


def test_geometric_counts_stay_in_range_and_are_unbiased() -> None:
    rng = random.Random(5)
    epsilon, n = 1.0, 20_000
    alpha = math.exp(-epsilon)
    zero = [truncated_geometric(0, epsilon, rng) for _ in range(n)]
    assert min(zero) == 0  # truncated: a count is never negative
    assert zero.count(0) / n == pytest.approx(1 / (1 + alpha), abs=0.01)
    ten = np.array([truncated_geometric(10, epsilon, rng) for _ in range(n)])
    assert ten.min() >= 0
    variance = 2 * alpha / (1 - alpha) ** 2  # the two-sided geometric's
    assert ten.mean() == pytest.approx(10, abs=4 * math.sqrt(variance / n))
    assert ten.var() == pytest.approx(variance, rel=0.1)
    assert (ten != 10).mean() > 0.3  # noised, not passed through


def test_geometric_yes_no_through_the_beacon_matches_its_epsilon(cohort: AttackCohort, node_dir: Path) -> None:
    alpha = math.exp(-GEOMETRIC.count_epsilon)  # type: ignore[operator]
    absent = sites_with(cohort, 0, 0, 300)
    singletons = sites_with(cohort, 1, 1, 300)
    common = sites_with(cohort, 12, 10**6, 100)
    said = beacon_yes(node_dir, GEOMETRIC, np.concatenate([absent, singletons, common]), seed=4)
    expected = alpha / (1 + alpha)  # 0.10 at epsilon 2.2
    assert said[:300].mean() == pytest.approx(expected, abs=0.055)
    assert 1 - said[300:600].mean() == pytest.approx(expected, abs=0.055)
    assert said[600:].all()  # 12+ copies: the noise would need 12 steps down (alpha^12 ~ 3e-12)


def test_the_attackers_know_the_geometric_mechanism_as_the_guard_applies_it() -> None:
    settings = PrivacySettings(count_epsilon=1.0, min_allele_count=2)
    g = PrivacyGuard(MemoryPrivacyState(), rng=random.Random(6), defaults={Granularity.BOOLEAN: settings})
    ds = Dataset(id="cohort", title="cohort", custodian="steward", access_level="controlled")
    ds.beacon_policy = {}
    boolean = Decision("cohort", Granularity.BOOLEAN, "test")
    n = 1500
    for count in (0, 1, 2, 3, 5):
        modelled = float(yes_probability(np.array([0.0]), count, settings)[0])
        yes = 0
        for i in range(n):
            caller = g.caller(Identity(f"c{count}-{i}", "https://login.example.org"))
            yes += g.filter_answer(caller, boolean, ds, f"c{count}:{i}", BitMap(range(count)), count).exists
        assert yes / n == pytest.approx(modelled, abs=4 * math.sqrt(modelled * (1 - modelled) / n) + 1e-9), count


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"count_epsilon": 1.0, "flip_probability": 0.2}, "replaces randomised response"),
        ({"count_epsilon": 0}, "count_epsilon must be a number above 0"),
        ({"count_epsilon": True}, "count_epsilon must be a number above 0"),
    ],
)
def test_meaningless_geometric_policies_are_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        PrivacySettings.merged(PrivacySettings(), overrides, "beacon_policy.privacy.default")
