"""Issue 17's ideas for the budget's accounting (lab, ``genoshare_lab.privacy.accounting``), on a small cohort.

What a reader of the frontier relies on:

- **evidence pricing** charges a "yes" the mechanism's own privacy loss: exactly epsilon on a singleton under
  the geometric mechanism (``P(yes | 1) / P(yes | 0) = 1 / alpha``), falling fast with the count;
- **the share gate** changes nothing for the member a person's rare questions all fall on (a walk over it
  spends its budget as the node's guard does), with no allowance at all it *is* the node's guard, and it
  spares the members a broad random session touches: fewer wrong "no" than the node's budget gives it;
- **the diluting attacker** pads its walk with decoys that are not the target's, in the walk's order;
- **per node**: each node (seed) is measured apart, with its own interval (``per_node``).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from pyroaring import BitMap
from tiny_lab import TINY, TINY_PER_NODE

from genoshare.access.privacy import PrivacySettings
from genoshare_lab.privacy import per_node
from genoshare_lab.privacy.accounting import EvidencePriced, GatedBeacon, ShareGate, diluted_plan, walk_positions
from genoshare_lab.privacy.attacks import plan_queries
from genoshare_lab.privacy.cohort import AttackCohort, load_or_simulate
from genoshare_lab.privacy.harness import GuardedBeacon

BEST_POINT = PrivacySettings(budget=0.5, count_epsilon=2.2)


@pytest.fixture(scope="module")
def cohort() -> AttackCohort:
    return load_or_simulate(TINY, None)


def test_evidence_pricing_charges_the_mechanisms_privacy_loss() -> None:
    priced = EvidencePriced(budget=2.3, count_epsilon=2.2)
    assert priced.cost(1) == pytest.approx(2.2, rel=1e-9)  # a singleton's "yes": the whole epsilon
    costs = [priced.cost(c) for c in range(1, 7)]
    assert all(a > b > 0 for a, b in itertools.pairwise(costs))
    assert priced.cost(2) == pytest.approx(math.log((1 - 0.1108**2 / 1.1108) / (1 - 0.1108 / 1.1108)), rel=1e-3)
    # The node's accounting charges a singleton 0.46 whatever the noise; the two differ, or nothing was priced.
    assert PrivacySettings(budget=2.3, count_epsilon=2.2).cost(1) == pytest.approx(0.459, abs=1e-3)


def test_a_walk_over_one_member_spends_its_budget_as_under_the_node(cohort: AttackCohort) -> None:
    plans = plan_queries(cohort, 200, 400, seed=3)
    for target in range(4):  # member targets: every rare question of the walk falls on the member
        walk, member = plans.a2[target, :60], int(cohort.member_targets[target])
        node = GuardedBeacon(cohort, BEST_POINT, seed=5)
        said = node.session(f"walk-{target}", walk)
        gated = GatedBeacon(cohort, BEST_POINT, ShareGate(share=0.05), seed=5)
        gated_said = gated.session(f"walk-{target}", walk)
        (session,) = gated.state.sessions.values()
        assert list(session.gated([member])) == [member]  # the walk's share on the member is 1
        # The member pays what the node charges it: spent to the end of the budget, the same amount.
        assert session.spends.of(BitMap([member]))[member] == pytest.approx(node.spent_on(f"walk-{target}", member))
        assert node.spent_on(f"walk-{target}", member) > BEST_POINT.budget - BEST_POINT.cost(1)  # type: ignore[operator]
        # Other carriers of the walk's alleles are spared once the walk's questions outnumber theirs, so a
        # few answers may differ; the member's do not.
        assert (gated_said == said).mean() >= 0.95


def test_without_an_allowance_the_gate_is_the_node_budget(cohort: AttackCohort) -> None:
    plans = plan_queries(cohort, 200, 1500, seed=4)
    node = GuardedBeacon(cohort, BEST_POINT, seed=6).session("benign", plans.benign)
    gated = GatedBeacon(cohort, BEST_POINT, ShareGate(share=0.0), seed=6).session("benign", plans.benign)
    assert (gated == node).all()


def test_the_gate_spares_a_broad_session(cohort: AttackCohort) -> None:
    plans = plan_queries(cohort, 200, 3000, seed=4)
    sites = plans.benign
    rare = (cohort.beacon_ac[sites] >= 1) & (cohort.beacon_ac[sites] <= 5)
    node = GuardedBeacon(cohort, BEST_POINT, seed=6).session("benign", sites)
    gated = GatedBeacon(cohort, BEST_POINT, ShareGate(share=0.02), seed=6).session("benign", sites)
    node_wrong, gated_wrong = (~node[rare]).mean(), (~gated[rare]).mean()
    assert node_wrong > 0.3  # the node's budget refuses many rare alleles to a 3,000-question session
    assert gated_wrong < node_wrong / 2


def test_a_diluted_walk_keeps_the_walk_order_and_pads_with_others_alleles(cohort: AttackCohort) -> None:
    plans = plan_queries(cohort, 100, 10, seed=2)
    plan = diluted_plan(cohort, plans.a2, ratio=3, queries=100, seed=2)
    on_walk = np.arange(100) % 4 == 3
    for target in (0, 20):
        assert (plan[target, on_walk] == plans.a2[target, :25]).all()
        assert not np.isin(plan[target, ~on_walk], cohort.carried_by_target(target)).any()
    assert walk_positions(3, 8).tolist() == [0, 0, 0, 1, 1, 1, 1, 2]


def test_per_node_measures_each_node_apart_with_its_interval() -> None:
    config = TINY_PER_NODE
    report = per_node.run(
        config, None, rows=("budget=0.5 + geometric eps=2.2",), gates=[(BEST_POINT, ShareGate(0.02))], workers=1
    )
    assert report["seeds"] == [8, 9] and report["targets"] == TINY.n_targets
    rows = report["rows"]
    assert [len(row["nodes"]) for row in rows] == [2, 2]
    assert "share gate 0.02" in rows[1]["defence"]
    for row in rows:
        for node in row["nodes"]:
            best = node["best_response"]
            assert best["low"] <= best["power"] <= best["high"]
            assert node["utility"]["false_yes_absent"] is not None
    # Two nodes are two draws of the coins and query plans, not one result copied.
    assert rows[0]["nodes"][0]["utility"] != rows[0]["nodes"][1]["utility"]
    lines = per_node.table(report).splitlines()
    assert sum(line.startswith("| budget=0.5 + geometric eps=2.2 |") for line in lines) == 2
