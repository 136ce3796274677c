"""The attack harness against a real node: the Beacon handler under attack is the node's own.

A small cohort (120 members) is ingested into a node as a controlled dataset; every target's queries go
through ``BeaconService.query`` with a passport identity of its own, privacy state in the node's metadata
database. What a steward would check: undefended, the attackers identify members; under the node's
default policy the best-responding attacker's power falls, while benign researchers still get their "yes"
on common alleles; and the fast oracle the harness uses for its grid answers exactly as the node does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genoshare.access.granularity import Granularity
from genoshare.access.privacy import NODE_DEFAULTS, PrivacySettings
from genoshare_lab.privacy.attacks import plan_queries
from genoshare_lab.privacy.cohort import AttackCohort, CohortConfig, load_or_simulate
from genoshare_lab.privacy.harness import Defence, GuardedBeacon, HarnessConfig, collect, run
from genoshare_lab.privacy.node_target import NodeBeacon, build_node

TINY = CohortConfig(n_members=120, n_panel=120, n_targets=16, n_contigs=2, contig_length=6_000_000, seed=11)
DEFAULT = NODE_DEFAULTS[Granularity.COUNT]


@pytest.fixture(scope="module")
def cohort() -> AttackCohort:
    return load_or_simulate(TINY, None)


@pytest.fixture(scope="module")
def node_dir(cohort: AttackCohort, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_node(cohort, tmp_path_factory.mktemp("attack-node"))


@pytest.mark.parametrize("settings", [PrivacySettings(), DEFAULT], ids=["none", "node-default"])
def test_oracle_answers_exactly_as_the_node_with_its_sql_state(
    cohort: AttackCohort, node_dir: Path, settings: PrivacySettings
) -> None:
    """The grid's shortcut is sound: same sessions, same coin, answer for answer equal to the real handler."""
    plans = plan_queries(cohort, 60, 150, seed=3)
    node = NodeBeacon(node_dir, settings, seed=5, state="sql")
    try:
        real = collect(node, plans, settings, 60)
    finally:
        node.close()
    oracle = collect(GuardedBeacon(cohort, settings, seed=5), plans, settings, 60)
    assert real.same_as(oracle) == {"a1": 1.0, "a2": 1.0, "benign": 1.0}
    if settings.stateful:  # the defence did something, or the equality would prove little
        assert not real.a2.all()


def test_undefended_node_gives_members_away_and_the_default_blunts_it(
    cohort: AttackCohort, node_dir: Path, tmp_path: Path
) -> None:
    config = HarnessConfig(
        cohort=TINY, max_queries=2000, defended_queries=150, benign_queries=800, sql_check_sessions=2
    )
    report = run(
        config,
        work_dir=None,
        node_root=node_dir.parent,
        defences=[Defence("none", PrivacySettings()), Defence("node default", DEFAULT)],
    )
    undefended, default = report["results"]
    assert undefended["target"].startswith("node") and default["target"].startswith("node")
    # The node's handler and the oracle agreed on every answer; the node's SQL state on the re-asked sessions.
    for result in (undefended, default):
        assert set(result["oracle_agreement"].values()) == {1.0}
    assert default["sql_state_agreement"] == 1.0
    # Undefended: rarest-first identifies members within 30 questions; nothing is wrongly denied.
    assert report["gates"]["A2_power_at_30"] >= 0.9
    assert undefended["best_response"]["power"] >= 0.8
    assert undefended["utility"]["wrong_no"] == 0.0
    # The node's default: the best-responding attacker (who knows the defence) does far worse.
    assert default["best_response"]["power"] <= undefended["best_response"]["power"] - 0.3
    # ... and benign researchers still hear "yes" on alleles that are not rare (here AF >= 1 % is 3+ copies,
    # where budget exclusions can still reach; at full size none are wrongly denied).
    assert default["utility"]["wrong_no_common"] <= 0.1
    assert default["utility"]["wrong_no"] <= 0.3
    assert np.isfinite(report["timings"]["total_s"])


def test_a_sample_of_sessions_is_answered_as_in_the_full_run(cohort: AttackCohort) -> None:
    """Why the node's handler may answer only every 4th target: each session's coin is its own."""
    plans = plan_queries(cohort, 60, 150, seed=3)
    full = collect(GuardedBeacon(cohort, DEFAULT, seed=5), plans, DEFAULT, 60)
    rows = np.array([1, 6, 17, 30])
    sample = collect(GuardedBeacon(cohort, DEFAULT, seed=5), plans, DEFAULT, 60, rows)
    assert (sample.a1 == full.a1[rows]).all() and (sample.a2 == full.a2[rows]).all()
    assert (sample.benign == full.benign).all()
    assert not full.a2.all()  # the defence changed answers, or the equality would prove little
