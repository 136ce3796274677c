"""The attack flag as part of the defence (lab, ``genoshare_lab.privacy.flag_gated``), on a small cohort.

What a reader of the measurement relies on:

- a person the node's rule flags gets no more "yes" on rare alleles (``after="stop"``), while common
  alleles are still answered; before the flag the walk was answered as the share gate answers it;
- a benign session the rule never flags gets exactly the share gate's answers: the composition costs it
  nothing;
- the evasive attacker's walk, padded to the rule's share with made-up alleles, is never flagged, and the
  stricter the rule's share, the fewer walk questions fit in its question budget;
- per node: the flag-gated point is measured on each node apart, with its interval and its flags.
"""

from __future__ import annotations

import numpy as np
import pytest
from tiny_lab import TINY, TINY_PER_NODE

from genoshare.access.attack_watch import WatchRule
from genoshare.access.privacy import PrivacySettings
from genoshare_lab.privacy import per_node
from genoshare_lab.privacy.accounting import GatedBeacon, ShareGate
from genoshare_lab.privacy.attacks import plan_queries
from genoshare_lab.privacy.cohort import AttackCohort, load_or_simulate
from genoshare_lab.privacy.flag_gated import FlagGate, FlagGatedBeacon, evasive_attacks

#: No noise and a budget no walk here exhausts: every answer is the truth unless the flag changes it.
EXACT = PrivacySettings(budget=50.0)
GATE = ShareGate(share=0.003)


@pytest.fixture(scope="module")
def cohort() -> AttackCohort:
    return load_or_simulate(TINY, None)


def test_a_flagged_walk_gets_no_more_yes_on_rare_alleles(cohort: AttackCohort) -> None:
    plans = plan_queries(cohort, 200, 10, seed=3)
    target = 0  # a member target: every allele of its walk is present
    member = int(cohort.member_targets[target])
    rare_walk = [int(s) for s in plans.a2[target] if 1 <= cohort.beacon_ac[s] <= 5][:30]
    common = [int(s) for s in np.flatnonzero(cohort.beacon_ac >= 20)[:10]]
    beacon = FlagGatedBeacon(cohort, EXACT, FlagGate(GATE, WatchRule(), after="stop"), seed=5)
    said = beacon.session("walker", np.array(rare_walk + common))
    flagged = beacon.flagged_at("walker")
    assert flagged is not None and flagged < 10  # the node's rule: a rarest-first walk, flagged early
    assert all(member in cohort.carriers(s) for s in rare_walk)
    assert said[:flagged].all()  # before the flag, the truth
    assert not said[flagged : len(rare_walk)].any()  # after it, no rare allele is affirmed
    assert said[len(rare_walk) :].all()  # common alleles are still answered


def test_after_the_flag_the_budget_applies_to_every_carrier(cohort: AttackCohort) -> None:
    plans = plan_queries(cohort, 200, 10, seed=3)
    walk = plans.a2[1, :60]
    tight = PrivacySettings(budget=0.5)
    flag = FlagGate(GATE, WatchRule(), after="budget")
    beacon = FlagGatedBeacon(cohort, tight, flag, seed=5)
    beacon.session("walker", walk)
    (session,) = beacon.state.sessions.values()
    assert session.flagged_at is not None
    carriers = {m for s in walk.tolist() for m in cohort.carriers(s).tolist()}
    assert set(session.gated(carriers)) == carriers  # no member spared any more
    # Every carrier that answered "yes" after the flag paid for it: someone's budget is spent.
    assert max(spent for _, spent in session.spends.items()) >= tight.budget - tight.cost(1)  # type: ignore[operator]


def test_an_unflagged_benign_session_keeps_the_gates_answers(cohort: AttackCohort) -> None:
    plans = plan_queries(cohort, 200, 1500, seed=4)
    settings = PrivacySettings(budget=0.5, count_epsilon=2.2)
    flagged = FlagGatedBeacon(cohort, settings, FlagGate(GATE, WatchRule(), after="stop"), seed=6)
    with_flag = flagged.session("benign", plans.benign)
    assert flagged.flagged_at("benign") is None
    gate_only = GatedBeacon(cohort, settings, GATE, seed=6).session("benign", plans.benign)
    assert (with_flag == gate_only).all()


@pytest.mark.parametrize("share", [0.8, 0.1])
def test_the_evasive_walk_stays_under_the_rule(cohort: AttackCohort, share: float) -> None:
    plans = plan_queries(cohort, 1000, 10, seed=2)
    rule = WatchRule(min_evidence=0.6, min_share=share)
    sessions, on_walk = evasive_attacks(cohort, plans, rule, 300, seed=2)["evasive"]
    beacon = FlagGatedBeacon(cohort, EXACT, FlagGate(GATE, rule), seed=2)
    for target in range(0, 2 * TINY.n_targets, 4):
        beacon.session(f"evasive-{target}", sessions[target])
        assert beacon.flagged_at(f"evasive-{target}") is None
        assert (sessions[target, on_walk] == plans.a2[target, : on_walk.sum()]).all()
        assert (cohort.beacon_ac[sessions[target, ~on_walk]] == 0).all()  # decoys: made-up alleles
    # Its walk questions are at most the rule's share of its questions: a strict share leaves room for few.
    assert 0 < on_walk.sum() <= share * len(on_walk) + 1


def test_per_node_measures_the_flag_gated_point_on_each_node() -> None:
    config = TINY_PER_NODE
    flag = FlagGate(GATE, WatchRule(), after="stop")
    report = per_node.run(
        config, None, rows=(), gates=[(PrivacySettings(budget=0.5, count_epsilon=2.2), flag)], workers=1
    )
    (row,) = report["rows"]
    assert "flag 0.6 nats share 0.8 -> stop" in row["defence"]
    assert len(row["nodes"]) == 2  # seeds 8 and 9, each its own guard
    for node in row["nodes"]:
        best = node["best_response"]
        assert best["low"] <= best["power"] <= best["high"]
        assert node["flags"]["A2 with 0 decoys"]["members_flagged"] > 0.5  # plain walks are flagged
        assert node["flags"]["evasive"]["members_flagged"] == 0  # the evasive ones are not
