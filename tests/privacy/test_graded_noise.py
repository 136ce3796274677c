"""The graded defences: flips that weaken with the count, a separate false-"yes" rate, a panel-priced spend.

What a steward configuring ``beacon_policy["privacy"]`` would check: singletons are noised more than alleles
with a few copies; an exhausted member's private alleles say "yes" exactly as often as absent alleles, so the
answers after exhaustion carry no evidence; a spend priced at a deflated count costs more per "yes"; and the
attackers of the harness model each of these as the guard applies it (else their power would be flattered).
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from pyroaring import BitMap
from test_defences import ALICE, OFF, Clock, ask, spent

from genoshare.access.granularity import Granularity
from genoshare.access.passports import Identity
from genoshare.access.policy import Decision
from genoshare.access.privacy import PrivacyGuard, PrivacySettings, spend_cost
from genoshare.access.privacy_state import MemoryPrivacyState, SqlPrivacyState
from genoshare.errors import InvalidInput
from genoshare.store.db import Database
from genoshare.store.models import Dataset
from genoshare_lab.privacy.attacks import yes_probability

BOOLEAN = Decision("cohort", Granularity.BOOLEAN, "test")


def policy(database: Database, **privacy: object) -> Dataset:
    with database.session() as session:
        row = session.get(Dataset, "cohort")
        assert row is not None
        row.beacon_policy = {"privacy": {"default": {**OFF, **privacy}}}
    return row


def yes_rate(guard: PrivacyGuard, ds: Dataset, carriers: list[int], count: int, n: int, tag: str) -> float:
    """Share of "yes" over ``n`` distinct alleles with these carriers, each asked by a user of its own."""
    yes = 0
    for i in range(n):
        caller = guard.caller(Identity(f"{tag}-{i}", "https://login.example.org"))
        yes += guard.filter_answer(caller, BOOLEAN, ds, f"{tag}:{i}", BitMap(carriers), count).exists
    return yes / n


def test_flips_weaken_with_the_count(database: Database) -> None:
    ds = policy(database, flip_probability=0.4, flip_max_count=5, flip_decay=0.25)
    g = PrivacyGuard(MemoryPrivacyState(), rng=random.Random(4), clock=Clock())
    singleton = yes_rate(g, ds, [1], 1, 600, "one")
    three = yes_rate(g, ds, [1, 2, 3], 3, 600, "three")
    six = yes_rate(g, ds, list(range(6)), 6, 200, "six")
    assert 1 - singleton == pytest.approx(0.4, abs=0.06)  # 0.4 for a singleton
    assert 1 - three == pytest.approx(0.4 * 0.25**2, abs=0.02)  # 0.025 for three copies
    assert six == 1.0  # beyond flip_max_count: the truth
    # Absent alleles keep the full false-"yes" rate, or a "yes" on a singleton would be clear evidence.
    assert yes_rate(g, ds, [], 0, 600, "none") == pytest.approx(0.4, abs=0.06)


def test_after_exhaustion_a_members_alleles_say_yes_as_often_as_absent_ones(database: Database) -> None:
    """Idea (c) of docs/privacy.md: with randomised response on, post-exhaustion answers carry no evidence."""
    ds = policy(database, budget=0.5, flip_probability=0.1, flip_max_count=5, false_yes_probability=0.3)
    g = PrivacyGuard(SqlPrivacyState(database), rng=random.Random(8), clock=Clock())
    alice = g.caller(ALICE)
    while spent(database, str(alice.principal), 7) < 0.4:  # one singleton "yes" (0.46) exhausts member 7
        ask(g, alice, ds, f"spend{random.random()}", [7])
    after = [ask(g, alice, ds, f"private{i}", [7]) for i in range(300)]
    absent = [ask(g, alice, ds, f"absent{i}", []) for i in range(300)]
    private_yes, absent_yes = np.mean([a.exists for a in after]), np.mean([a.exists for a in absent])
    assert private_yes == pytest.approx(0.3, abs=0.07) and absent_yes == pytest.approx(0.3, abs=0.07)
    # ... while a present singleton of a member with budget left is wrongly denied only at flip_probability.
    fresh = [ask(g, alice, ds, f"fresh{i}", [100 + i]) for i in range(300)]
    assert np.mean([not a.exists for a in fresh]) == pytest.approx(0.1, abs=0.05)


def test_a_spend_priced_at_a_deflated_count_costs_more_for_alleles_with_a_few_copies(database: Database) -> None:
    ds = policy(database, budget=5.0, spend_count_scale=0.5)
    g = PrivacyGuard(SqlPrivacyState(database), rng=random.Random(1), clock=Clock())
    alice = g.caller(ALICE)
    assert ask(g, alice, ds, "three", [7, 8, 9], count=3).exists
    principal = str(alice.principal)
    assert spent(database, principal, 7) == pytest.approx(spend_cost(1.5))  # 0.25, not spend_cost(3) = 0.05
    assert spent(database, principal, 9) == pytest.approx(spend_cost(1.5))
    assert ask(g, alice, ds, "one", [10]).exists
    assert spent(database, principal, 10) == pytest.approx(spend_cost(0.5))  # 0.93
    # Priced at the Beacon's own count (the default), three copies cost 0.05.
    plain = policy(database, budget=5.0)
    assert ask(g, alice, plain, "three-again", [20, 21, 22], count=3).exists
    assert spent(database, principal, 20) == pytest.approx(spend_cost(3))


@pytest.mark.parametrize(
    ("name", "value"),
    [("flip_decay", 1.5), ("flip_decay", -0.1), ("spend_count_scale", 0), ("false_yes_probability", 0.5)],
)
def test_graded_settings_are_checked(database: Database, name: str, value: float) -> None:
    g = PrivacyGuard(SqlPrivacyState(database), rng=random.Random(1), clock=Clock())
    with pytest.raises(InvalidInput, match=name):
        g.settings(policy(database, **{name: value}), Granularity.BOOLEAN)


@pytest.mark.parametrize(
    "settings",
    [
        PrivacySettings(flip_probability=0.35, flip_max_count=5, flip_decay=0.5),
        PrivacySettings(flip_probability=0.25, flip_max_count=5, flip_decay=0.5, false_yes_probability=0.45),
        PrivacySettings(flip_probability=0.2, min_allele_count=3, false_yes_probability=0.3),
    ],
    ids=["decay", "decay+false-yes", "threshold+false-yes"],
)
def test_the_attackers_know_the_graded_defence_as_the_guard_applies_it(
    database: Database, settings: PrivacySettings
) -> None:
    """``attacks.yes_probability`` at a known count must be the guard's measured "yes" rate at that count."""
    defaults = {Granularity.BOOLEAN: settings}
    g = PrivacyGuard(MemoryPrivacyState(), rng=random.Random(6), clock=Clock(), defaults=defaults)
    ds = Dataset(id="cohort", title="cohort", custodian="steward", access_level="controlled")
    ds.beacon_policy = {}
    n = 1500
    for count in (0, 1, 2, 3, 4, 5, 7):
        modelled = float(yes_probability(np.array([0.0]), count, settings)[0])  # exactly `count` copies
        measured = yes_rate(g, ds, list(range(count)), count, n, f"c{count}")
        assert measured == pytest.approx(modelled, abs=4 * np.sqrt(modelled * (1 - modelled) / n) + 1e-9), count


def test_switching_randomised_response_off_switches_the_false_yes_off_too(database: Database) -> None:
    """A steward who sets ``flip_probability: 0`` over the node default (which has a false-"yes" rate) gets
    exact answers, not a one-sided noise left over from the default."""
    ds = policy(database, flip_probability=0.0, false_yes_probability=0.45, flip_decay=0.4)
    g = PrivacyGuard(MemoryPrivacyState(), rng=random.Random(2), clock=Clock())
    assert yes_rate(g, ds, [], 0, 200, "absent") == 0.0
    answer = g.filter_answer(g.caller(ALICE), BOOLEAN, ds, "present", BitMap([1, 2]), 2)
    assert answer.exists and answer.allele_count == 2  # not randomised, so the count is given
