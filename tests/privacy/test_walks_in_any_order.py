"""A walk over one member's genome in random order (A1, Shringarpure & Bustamante 2015) is flagged too.

Such a walk asks mostly common alleles, and its few rare ones come too seldom for their evidence to add up:
the rule the node had before flagged a third of them within 1,000 questions. What gives it away is that every
question is about an allele the member carries: among the questions on alleles with a few dozen copies, one
member carries all of them, where a benign session's are spread over many members and a clinician's screen
of a patient's candidates holds many the dataset lacks. Against the real metadata database (SQLite and
PostgreSQL), through the guard the Beacon answers with.
"""

from __future__ import annotations

from sqlalchemy import select
from test_defences import ask, dataset, guard
from test_person_budgets import passport

from genoshare.access.attack_watch import SessionWatch, SqlAttackWatch, WatchRule
from genoshare.store.db import Database
from genoshare.store.privacy_tables import PrivacyWatch

#: Members of a cohort of 1,000 who carry none of member 7's alleles below (the others' carriers vary).
OTHERS = range(100, 1000)


def _carriers(i: int, copies: int) -> list[int]:
    """Member 7 and ``copies - 1`` other members, a different set for each question."""
    return [7, *(OTHERS[(i * 37 + j) % len(OTHERS)] for j in range(copies - 1))]


def flagged_people(database: Database) -> dict[str, int]:
    """The people the node flagged, with the watched questions they had asked by then."""
    with database.session() as session:
        rows = session.scalars(select(PrivacyWatch).where(PrivacyWatch.flagged_at.is_not(None))).all()
        return {row.principal: row.rare_questions for row in rows}


def test_a_random_order_walk_is_flagged_by_its_hits_before_any_evidence(database: Database) -> None:
    ds = dataset(database, budget=5.0, flag_min_evidence=0.6)
    g = guard(database, watch=SqlAttackWatch(database, None))
    rule = WatchRule()
    walker = g.caller(passport("random-walker"))
    memory = SessionWatch(rule)
    flagged_at = None
    for i in range(12):
        # A common allele of member 7 between each of the ones with 10-40 copies: not watched at all.
        ask(g, walker, ds, f"common-{i}", [7, *OTHERS[:300]], 400)
        copies = 10 + 3 * i
        carriers = _carriers(i, copies)
        ask(g, walker, ds, f"member-7-{i}", carriers, copies)
        if memory.observe(carriers, copies):
            flagged_at = i + 1
        if flagged_people(database):
            break
    # Each of these weighs nothing as evidence (a "yes" on 10+ copies tells nothing about a carrier) ...
    assert memory.total == 0.0
    # ... and the eighth on member 7's alleles, all of the person's watched questions, flags the person.
    assert flagged_people(database) == {walker.principal: rule.min_hits}
    assert flagged_at == rule.min_hits, "the harness's rule must flag where the node does"


def test_questions_spread_over_many_members_or_half_absent_are_not_a_walk(database: Database) -> None:
    ds = dataset(database, budget=5.0, flag_min_evidence=0.6)
    g = guard(database, watch=SqlAttackWatch(database, None))
    # A researcher's alleles with 10-40 copies: each carried by a different crowd, member 7 among a third.
    spread = g.caller(passport("spread-researcher"))
    for i in range(60):
        carriers = _carriers(i, 10 + i % 30) if i % 3 == 0 else [OTHERS[(i * 11 + j) % 900] for j in range(12)]
        ask(g, spread, ds, f"spread-{i}", carriers, len(carriers))
    # A clinician's candidates, one absent from the dataset for each one member 7 carries with 10+ copies.
    clinician = g.caller(passport("clinician"))
    for i in range(60):
        carriers = _carriers(i, 12) if i % 2 else []
        ask(g, clinician, ds, f"candidate-{i}", carriers, len(carriers))
    # A walk that asked one made-up allele for every eight of member 7's is under the share of hits.
    careful = g.caller(passport("careful-walker"))
    for i in range(60):
        carriers = [] if i % 9 == 0 else _carriers(i, 20)
        ask(g, careful, ds, f"careful-{i}", carriers, len(carriers))
    assert flagged_people(database) == {}
