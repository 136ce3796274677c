"""Unit behaviour of the Beacon privacy defences against the real metadata database."""

from __future__ import annotations

import math
import random
from dataclasses import asdict

import pytest
from pyroaring import BitMap

from genoshare.access.granularity import Granularity
from genoshare.access.passports import Identity
from genoshare.access.policy import Decision
from genoshare.access.privacy import Caller, PrivacyGuard, PrivacySettings, RateLimited, spend_cost
from genoshare.access.privacy_state import MemoryPrivacyState, SqlPrivacyState
from genoshare.errors import InvalidInput
from genoshare.store.db import Database
from genoshare.store.models import Dataset

ALICE = Identity("alice", "https://login.example.org")
#: Every setting at the value that switches its defence off (PrivacySettings' own defaults).
OFF = asdict(PrivacySettings())
BOOLEAN = Decision("cohort", Granularity.BOOLEAN, "test")


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def dataset(database: Database, dataset_id: str = "cohort", **privacy: object) -> Dataset:
    with database.session() as session:
        row = session.get(Dataset, dataset_id)
        assert row is not None
        # Start from everything off (not the node's defaults), so each test sees only the defence it names.
        row.beacon_policy = {"privacy": {"default": {**OFF, **privacy}}}
    return row


def guard(database: Database, **kwargs: object) -> PrivacyGuard:
    return PrivacyGuard(SqlPrivacyState(database), rng=random.Random(1), clock=Clock(), **kwargs)  # type: ignore[arg-type]


def ask(  # type: ignore[no-untyped-def]
    guard: PrivacyGuard,
    caller: Caller,
    ds: Dataset,
    key: str,
    carriers: list[int],
    count: int | None = None,
    position: tuple[str, int] | None = None,
):
    decision = Decision(ds.id, Granularity.BOOLEAN, "test")
    copies = len(carriers) if count is None else count
    return guard.filter_answer(caller, decision, ds, key, BitMap(carriers), copies, position)


def spent(database: Database, principal: str, member: int) -> float:
    state = SqlPrivacyState(database)
    with state.session(principal, "cohort") as session:
        return session.spent(BitMap([member])).get(member, 0.0)


def test_spend_cost_is_minus_log_one_minus_d() -> None:
    assert spend_cost(1) == pytest.approx(-math.log(1 - math.exp(-1)))
    assert spend_cost(1) == pytest.approx(0.4587, abs=1e-4)
    assert spend_cost(20) < 1e-8
    assert spend_cost(0) == 0.0


def test_a_yes_spends_each_carriers_budget(database: Database) -> None:
    ds = dataset(database, budget=1.0)
    g = guard(database)
    alice = g.caller(ALICE)
    answer = ask(g, alice, ds, "20:100:A:G", [7])
    assert answer.exists and answer.allele_count == 1
    assert spent(database, alice.principal, 7) == pytest.approx(spend_cost(1))
    assert spent(database, alice.principal, 8) == 0.0
    # A "no" spends nothing; a common allele costs below the floor and writes nothing.
    assert not ask(g, alice, ds, "20:101:A:G", []).exists
    assert ask(g, alice, ds, "20:102:A:G", list(range(50, 90))).exists
    assert spent(database, alice.principal, 60) == 0.0


def test_an_exhausted_budget_withholds_answers_touching_that_member(database: Database) -> None:
    ds = dataset(database, budget=1.0)
    g = guard(database)
    alice = g.caller(ALICE)
    assert ask(g, alice, ds, "a1", [7]).exists
    assert ask(g, alice, ds, "a2", [7]).exists  # 0.92 spent; a third singleton would overdraw
    third = ask(g, alice, ds, "a3", [7])
    assert not third.exists and third.allele_count == 0
    assert spent(database, alice.principal, 7) == pytest.approx(2 * spend_cost(1))
    # The member is left out, not the allele: other carriers still answer, with the count without member 7.
    shared = ask(g, alice, ds, "a4", [7, 8], count=2)
    assert shared.exists and shared.carrier_count == 1 and shared.allele_count == 1
    # An allele with more copies costs less (0.05 for three), and member 7 can still pay for it.
    assert ask(g, alice, ds, "a6", [7, 10, 11], count=3).carrier_count == 3
    assert ask(g, alice, ds, "a5", [8]).exists
    # Another user has a budget of their own.
    bob = g.caller(Identity("bob", "https://login.example.org"))
    assert ask(g, bob, ds, "a3", [7]).exists


def test_repeats_come_from_the_cache_and_cost_nothing(database: Database) -> None:
    ds = dataset(database, budget=1.0)
    g = guard(database)
    alice = g.caller(ALICE)
    first = ask(g, alice, ds, "a1", [7])
    for _ in range(5):
        again = ask(g, alice, ds, "a1", [7])
        assert again.cached and again.exists == first.exists
    assert spent(database, alice.principal, 7) == pytest.approx(spend_cost(1))


def test_randomised_answers_are_cached_so_asking_again_does_not_average_the_noise(database: Database) -> None:
    ds = dataset(database, flip_probability=0.4, flip_max_count=5)
    g = guard(database)
    alice = g.caller(ALICE)
    answers = [ask(g, alice, ds, f"k{i}", [1]) for i in range(200)]
    assert all(a.allele_count is None and a.carrier_count is None for a in answers)
    flipped = sum(not a.exists for a in answers)
    assert 50 < flipped < 110  # ~80 of 200 at p = 0.4
    for i in range(0, 200, 20):
        assert ask(g, alice, ds, f"k{i}", [1]).exists == answers[i].exists
    # Common alleles (more than flip_max_count copies) are never flipped.
    assert all(ask(g, alice, ds, f"c{i}", list(range(10))).exists for i in range(50))


def test_minimum_allele_count(database: Database) -> None:
    ds = dataset(database, min_allele_count=3)
    g = guard(database)
    alice = g.caller(ALICE)
    assert not ask(g, alice, ds, "k1", [1, 2]).exists
    assert ask(g, alice, ds, "k2", [1, 2], count=3).exists
    assert not ask(g, alice, ds, "k3", []).exists


def test_linked_issuers_and_linked_accounts_share_one_budget(database: Database) -> None:
    ds = dataset(database, budget=1.0)
    g = guard(database, linked_issuers=[{"https://login.example.org", "https://aai.example.org"}])
    at_one = g.caller(ALICE)
    at_other = g.caller(Identity("alice", "https://aai.example.org"))
    assert at_one.principal == at_other.principal
    assert ask(g, at_one, ds, "a1", [7]).exists
    assert ask(g, at_other, ds, "a2", [7]).exists
    assert not ask(g, at_one, ds, "a3", [7]).exists

    # Explicit link: a second account of the same person, which had already spent on member 9.
    second = g.caller(Identity("alice-work", "https://idp.example.com"))
    assert ask(g, second, ds, "b1", [9]).exists
    assert ask(g, second, ds, "b2", [9]).exists
    principal = g.link_accounts(at_one.account, second.account, by="steward@node")
    assert principal == at_one.principal
    relinked = g.caller(Identity("alice-work", "https://idp.example.com"))
    assert relinked.principal == principal
    assert spent(database, principal, 9) == pytest.approx(2 * spend_cost(1))
    assert spent(database, principal, 7) == pytest.approx(2 * spend_cost(1))
    assert not ask(g, relinked, ds, "b3", [9]).exists
    assert not ask(g, relinked, ds, "a4", [7]).exists
    # Answers the second account got are now the person's cache.
    assert ask(g, at_one, ds, "b1", [9]).cached
    # Linking again is a no-op.
    assert g.link_accounts(second.account, at_one.account, by="steward@node") == principal


def test_rate_limit(database: Database) -> None:
    ds = dataset(database, per_minute=3, per_day=5)
    clock = Clock()
    g = PrivacyGuard(SqlPrivacyState(database), clock=clock)
    alice = g.caller(ALICE)
    for i in range(3):
        ask(g, alice, ds, f"k{i}", [1, 2, 3])
    with pytest.raises(RateLimited) as error:
        ask(g, alice, ds, "k3", [1, 2, 3])
    assert error.value.status_code == 429 and 0 < error.value.retry_after <= 60
    clock.now += 60
    ask(g, alice, ds, "k3", [1, 2, 3])
    ask(g, alice, ds, "k4", [1, 2, 3])
    clock.now += 60
    with pytest.raises(RateLimited):  # the day's 5 are used
        ask(g, alice, ds, "k5", [1, 2, 3])
    other = g.caller(Identity("bob", "https://login.example.org"))
    ask(g, other, ds, "k5", [1, 2, 3])


def test_state_survives_a_new_database_object(database: Database, database_url: str) -> None:
    ds = dataset(database, budget=1.0, flip_probability=0.2, flip_max_count=5)
    g = guard(database)
    alice = g.caller(ALICE)
    first = [ask(g, alice, ds, f"k{i}", [7]) for i in range(6)]
    database.dispose()

    reopened = Database(database_url)
    try:
        g2 = PrivacyGuard(SqlPrivacyState(reopened), rng=random.Random(99))
        alice2 = g2.caller(ALICE)
        for i, answer in enumerate(first):
            again = ask(g2, alice2, ds, f"k{i}", [7])
            assert again.cached and again.exists == answer.exists
        assert spent(reopened, alice2.principal, 7) > 0.9
        assert ask(g2, alice2, ds, "fresh", [7]).exists in (False, True)
    finally:
        reopened.dispose()


def test_anonymous_callers_get_no_allele_answers_on_non_public_datasets(database: Database) -> None:
    g = guard(database)
    anonymous = g.caller(None)
    closed = dataset(database, "cohort")
    answer = g.filter_answer(anonymous, BOOLEAN, closed, "k", BitMap([1]), 1)
    assert answer.withheld and not answer.exists
    public = dataset(database, "open")
    record = Decision("open", Granularity.RECORD, "public")
    assert g.filter_answer(anonymous, record, public, "k", BitMap([1]), 1).exists


def test_record_level_callers_are_not_noised_by_default(database: Database) -> None:
    g = guard(database)
    ds = dataset(database)
    record = Decision("cohort", Granularity.RECORD, "grant")
    answer = g.filter_answer(g.caller(ALICE), record, ds, "k", BitMap([1]), 1)
    assert answer.exists and answer.allele_count == 1


def test_settings_are_checked(database: Database) -> None:
    g = guard(database)
    with pytest.raises(InvalidInput, match="unknown privacy settings"):
        g.settings(dataset(database, budjet=1.0), Granularity.BOOLEAN)
    with pytest.raises(InvalidInput, match="flip_probability"):
        g.settings(dataset(database, flip_probability=0.7), Granularity.BOOLEAN)
    ds = dataset(database, budget=2.5)
    ds.beacon_policy["privacy"]["count"] = {"budget": 4}  # type: ignore[index]
    assert g.settings(ds, Granularity.BOOLEAN).budget == 2.5
    assert g.settings(ds, Granularity.COUNT).budget == 4


def test_sql_and_memory_state_answer_alike(database: Database) -> None:
    """The harness measures the guard over MemoryPrivacyState; this is why that measures the node."""
    ds = dataset(database, budget=1.5, min_allele_count=2, flip_probability=0.1, flip_max_count=4)
    rng = random.Random(5)
    queries = []
    for _ in range(300):
        size = rng.choice([0, 1, 1, 2, 3, 5, 30])
        carriers = rng.sample(range(40), size)
        queries.append((f"k{rng.randrange(250)}", carriers, size + rng.randrange(size + 1)))
    results = []
    for state in (SqlPrivacyState(database), MemoryPrivacyState()):
        g = PrivacyGuard(state, rng=random.Random(3), clock=Clock())
        caller = g.caller(ALICE)
        results.append([ask(g, caller, ds, key, carriers, count) for key, carriers, count in queries])
    assert results[0] == results[1]


def test_two_server_processes_share_one_budget(database: Database, database_url: str) -> None:
    """Each state keeps a copy in memory; a spend by another process on the same database is still seen."""
    ds = dataset(database, budget=1.0)
    other_database = Database(database_url)
    try:
        one, two = guard(database), PrivacyGuard(SqlPrivacyState(other_database), rng=random.Random(2), clock=Clock())
        alice_one, alice_two = one.caller(ALICE), two.caller(ALICE)
        assert ask(one, alice_one, ds, "a1", [7]).exists
        assert ask(two, alice_two, ds, "a2", [7]).exists  # 0.92 of member 7's budget spent across both
        assert not ask(one, alice_one, ds, "a3", [7]).exists
        assert ask(two, alice_two, ds, "a1", [7]).cached  # the answer the other process gave
        assert spent(database, alice_one.principal, 7) == pytest.approx(2 * spend_cost(1))
    finally:
        other_database.dispose()


def test_a_refused_request_leaves_the_state_as_it_was(database: Database) -> None:
    ds = dataset(database, budget=1.0, per_minute=2)
    clock = Clock()
    g = PrivacyGuard(SqlPrivacyState(database), clock=clock)
    alice = g.caller(ALICE)
    assert ask(g, alice, ds, "a1", [7]).exists
    ask(g, alice, ds, "a2", [8])
    for _ in range(3):
        with pytest.raises(RateLimited):
            ask(g, alice, ds, "a3", [7])
    clock.now += 60
    assert ask(g, alice, ds, "a1", [7]).cached
    assert spent(database, alice.principal, 7) == pytest.approx(spend_cost(1))
    # A restart (a new state on the same database) sees the same budget and answers.
    reopened = PrivacyGuard(SqlPrivacyState(database), clock=clock)
    assert ask(reopened, reopened.caller(ALICE), ds, "a2", [8]).cached


def test_exact_counts_only_for_count_callers_and_common_alleles(database: Database) -> None:
    """``exact_count_min``: counts at or above it come back exact to count-level callers; rarer alleles and
    yes/no callers keep randomised response (no count), and a threshold below 1 is refused."""
    ds = dataset(database, flip_probability=0.4, flip_max_count=None, exact_count_min=20)
    g = guard(database)
    alice = g.caller(ALICE)
    count = Decision(ds.id, Granularity.COUNT, "test")
    common = [g.filter_answer(alice, count, ds, f"c{i}", BitMap(range(15)), 20) for i in range(30)]
    assert all(a.exists and a.allele_count == 20 and a.carrier_count == 15 for a in common)
    rare = [g.filter_answer(alice, count, ds, f"r{i}", BitMap(range(15)), 19) for i in range(30)]
    assert all(a.randomised for a in rare) and not all(a.exists for a in rare)
    yes_no = [ask(g, alice, ds, f"b{i}", list(range(15)), count=20) for i in range(30)]
    assert all(a.randomised for a in yes_no)
    with pytest.raises(InvalidInput, match="exact_count_min"):
        g.settings(dataset(database, exact_count_min=0), Granularity.COUNT)
