"""The attack harness at reduced size: the attackers must work, and the node's default must blunt them.

A smaller beacon (200 members) is easier to attack than the full 1,000, so the gates here are a floor the
attackers must clear; the full-size numbers come from ``python -m genoshare_lab.privacy.harness``. This test
asks the oracle only (``node=False``); ``test_harness_real_handler.py`` attacks a real node's handler.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from genoshare.access.granularity import Granularity
from genoshare.access.privacy import NODE_DEFAULTS, PrivacySettings
from genoshare_lab.privacy.attacks import plan_queries
from genoshare_lab.privacy.cohort import CohortConfig, simulate
from genoshare_lab.privacy.harness import (
    Answers,
    Defence,
    HarnessConfig,
    a3_table,
    collusion_table,
    detection_table,
    evaluate,
    frontier_table,
    measure_a3,
    measure_a3_geometric,
    run,
)
from genoshare_lab.privacy.masking import greedy_masking, masked_answers

SMALL = HarnessConfig(
    cohort=CohortConfig(n_members=200, n_panel=200, n_targets=30, n_contigs=2, contig_length=12_000_000, seed=7),
    max_queries=5000,
    defended_queries=200,
    benign_queries=1500,
)


def test_attacks_reach_the_gates_and_the_default_policy_blunts_them() -> None:
    report = run(
        SMALL,
        work_dir=None,
        node=False,
        defences=[Defence("none", PrivacySettings()), Defence("default", NODE_DEFAULTS[Granularity.BOOLEAN])],
    )
    assert report["unseen_in_panel_per_target"]["mean"] >= 20
    gates = report["gates"]
    assert gates["A1_power_at_max_queries"] >= 0.7
    assert gates["A2_power_at_30"] >= 0.95
    undefended, default = report["results"]
    assert undefended["utility"]["wrong_no"] == 0.0
    assert undefended["best_response"]["power"] >= 0.8
    assert default["best_response"]["power"] <= 0.5
    # At 200 members "AF >= 1 %" starts at 4 copies, within reach of budget exclusions (and of randomised
    # response when a steward flips up to 5 copies); at full size the harness measures no wrong "no" there.
    assert default["utility"]["wrong_no_common"] <= 0.03


def test_benign_screen_measures_false_yes_and_precision() -> None:
    """A researcher's variant screen asks absent alleles too: without noise every "yes" is true, with it not."""
    config = replace(SMALL, max_queries=300, defended_queries=100, benign_queries=500, screen_queries=600)
    defences = [
        Defence("none", PrivacySettings()),
        Defence("budget only", PrivacySettings(budget=1.0)),
        Defence("node default", NODE_DEFAULTS[Granularity.BOOLEAN]),
    ]
    report = run(config, work_dir=None, node=False, defences=defences)
    undefended, budget_only, default = (r["utility"] for r in report["results"])
    assert undefended["screen_queries"] == 600
    # A screen of candidates unseen in the reference: the dataset lacks a good share of them, not all.
    assert 0.2 <= undefended["screen_absent_share"] <= 0.8
    for use in (undefended, budget_only):
        assert use["false_yes_absent"] == 0.0
        assert use["precision"] == 1.0
    # The default affirms absent alleles at false_yes_probability = 0.45: clearly above 0, and a "yes" on a
    # screen candidate is then often false.
    assert 0.3 <= default["false_yes_absent"] <= 0.6
    assert default["precision"] < 0.85
    table = frontier_table(report["results"])
    assert "false yes: absent" in table and "precision of yes" in table
    default_row = table.splitlines()[-1].split("|")
    assert float(default_row[-4]) == round(default["false_yes_absent"], 3)


def test_a3_exact_counts_identify_members_and_no_counts_identify_none() -> None:
    """A3 (Homer et al. 2008) on exact counts: a working attacker when every count is served, at chance
    (5 % power at 5 % FPR) when none is; the threshold chosen is one whose measured power meets the goal."""
    cohort = simulate(SMALL.cohort)
    plans = plan_queries(cohort, SMALL.max_queries, 10, seed=8)
    a3 = measure_a3(cohort, plans, seed=8, thresholds=(1, 10**6))
    every, none = a3["rows"]
    assert every["by_queries"]["5000"]["power"] >= 0.5
    assert all(point["power"] == 0.05 for point in none["by_queries"].values())
    assert a3["chosen_threshold"] == 10**6
    assert "10**6" not in a3_table(a3) and "| 1000000 |" in a3_table(a3)


def test_a3_against_geometric_counts_weakens_with_the_noise() -> None:
    """A3 on counts served with the node's truncated geometric noise (``count_epsilon``): at a huge epsilon
    the counts are exact and A3 does exactly as on exact counts; at a tiny one it is near chance."""
    cohort = simulate(SMALL.cohort)
    plans = plan_queries(cohort, 1000, 10, seed=8)
    exact = measure_a3(cohort, plans, seed=8, thresholds=(0,))["rows"][0]["by_queries"]
    noisy = measure_a3_geometric(cohort, plans, seed=8, epsilons=(50.0, 0.01))["rows"]
    assert noisy[0]["by_queries"]["1000"]["power"] == exact["1000"]["power"]
    assert exact["1000"]["power"] >= 0.3
    assert noisy[1]["by_queries"]["1000"]["power"] <= 0.2


def test_greedy_masking_hides_members_at_the_price_of_their_rare_alleles_and_no_false_yes() -> None:
    """The optimisation-based masking (Venkatesaramani et al.): it only turns "yes" answers into "no", never
    affirms an absent allele, and the rarest-first attacker loses most of its power."""
    cohort = simulate(SMALL.cohort)
    plans = plan_queries(cohort, 300, 600, seed=8, screen_queries=300)
    masked, chosen = greedy_masking(cohort, plans, 300, seed=1)
    assert chosen["masked_alleles"] > 0 and (cohort.beacon_ac[masked] > 0).all()
    a1, a2, benign = masked_answers(cohort, plans, masked, 300)
    result = evaluate(cohort, plans, Defence("masking", PrivacySettings()), Answers(a1, a2, benign), 8, "oracle")
    exact = Answers(*masked_answers(cohort, plans, np.zeros_like(masked), 300))
    undefended = evaluate(cohort, plans, Defence("none", PrivacySettings()), exact, 8, "oracle")
    assert result["best_response"]["power"] <= undefended["best_response"]["power"] - 0.3
    assert result["utility"]["false_yes_absent"] == 0.0 and result["utility"]["precision"] == 1.0


def test_the_nodes_flag_catches_rarest_first_walks_and_spares_random_sessions() -> None:
    """The node's own rule (``access.attack_watch``) over the harness's sessions: every rarest-first walk over a
    member's genome is flagged within its first few questions, before the walked member's budget is spent,
    none of the benign researcher's random sessions is, and the attacker who knows the rule is measured."""
    config = replace(SMALL, max_queries=300, defended_queries=100, benign_queries=1000, screen_queries=600)
    defences = [Defence("none", PrivacySettings()), Defence("node default", NODE_DEFAULTS[Granularity.BOOLEAN])]
    report = run(replace(config, colluders=()), work_dir=None, node=False, defences=defences)
    rule = NODE_DEFAULTS[Granularity.BOOLEAN].watch_rule
    (flags,) = [f for f in report["detection"] if f["node_default"]]
    assert rule is not None and flags["rule"]["min_evidence"] == rule.min_evidence
    assert flags["A2"]["members_flagged"] >= 0.9
    # A singleton weighs 0.46 nats: two or three questions of a rarest-first walk reach 0.6.
    assert flags["A2"]["median_query_when_flagged"] <= 4
    # At N = 200 a session's first two rare questions share a carrier now and then (at N = 1,000: 0 of 50).
    for parts in (10, 40):
        alarms = flags["benign"][f"random sites and screen, {parts} sessions"]
        assert alarms["sessions"] == parts and alarms["share"] <= 0.05
    spent = flags["budget_at_flag"]["A2"]
    assert spent["flagged_members"] >= 27 and 0 < spent["median_spent"] < spent["budget"]
    evading = report["adaptive"]
    assert evading["members_flagged"] == 0 and 0 < evading["real_questions"] < 100
    assert 0 <= evading["defence"]["adaptive_power"] <= 1
    table = detection_table(report["detection"], evading)
    assert "benign: one patient's novel alleles, shuffled" in table and "(node default)" in table
    assert "Adaptive attacker" in table


def test_accountable_identities_are_measured_beside_fresh_ones() -> None:
    """An attacker spreading each target's questions over 50 identities meets 50 budgets per member: more
    power than one identity per target; a single identity for every target has no more than 50 do."""
    config = replace(SMALL, max_queries=300, defended_queries=150, benign_queries=300, colluders=(1, 50))
    defences = [Defence("none", PrivacySettings()), Defence("node default", NODE_DEFAULTS[Granularity.BOOLEAN])]
    report = run(config, work_dir=None, node=False, defences=defences)
    default = report["results"][1]
    one, fifty = (c["best_response"]["power"] for c in default["colluding"])
    assert [c["colluders"] for c in default["colluding"]] == [1, 50]
    assert fifty >= default["best_response"]["power"] and fifty >= one
    assert "50, shared by all targets" in collusion_table(report["results"])
