"""The harness's positions candidate (``WatchRule.min_span``): a screen through one shared segment is no walk.

A clinician screening one patient's candidates in genome order may open on a stretch the patient shares
with a relative in the dataset: there, every candidate is the relative's allele, as in a walk over the
relative's genome. A walk over a member's genome, in any order, soon asks about alleles far apart. The
candidate counts a member towards a flag only once the questions on their alleles lie on two chromosomes or
``min_span`` bases apart, or once they are ``span_free_hits`` of the person's questions wherever they lie.
The node's default rule is this candidate: the Beacon passes each allele's chromosome and start to the watch,
which keeps every member's first position and a "spread" mark in the metadata database; the node and the
harness flag the same questions (SQLite and PostgreSQL, through the guard the Beacon answers with).
"""

from __future__ import annotations

from test_defences import ask, dataset, guard
from test_person_budgets import passport
from test_walks_in_any_order import flagged_people

from genoshare.access.attack_watch import NODE_MIN_SPAN, NODE_SPAN_FREE_HITS, SessionWatch, SqlAttackWatch, WatchRule
from genoshare.store.db import Database
from genoshare_lab.privacy.detection import SPAN

Question = tuple[list[int], int, tuple[str, int]]


def _flagged_at(rule: WatchRule, questions: list[Question]) -> int | None:
    watch = SessionWatch(rule)
    for i, (carriers, copies, position) in enumerate(questions):
        if watch.observe(carriers, copies, position):
            return i + 1
    return None


def test_a_screen_through_a_segment_shared_with_a_relative_is_not_a_walk() -> None:
    # Twelve of the relative's singletons in a row, 100 kb apart on chromosome 20, then the patient's own
    # candidates: absent from the dataset, or other people's.
    segment = [([7], 1, ("20", 30_000_000 + 100_000 * i)) for i in range(12)]
    rest = [([] if i % 2 else [100 + i], 0 if i % 2 else 1, ("20", 32_000_000 + 500_000 * i)) for i in range(40)]
    screen = segment + rest
    assert _flagged_at(WatchRule(), screen) == 2, "without positions, the rule flags it"
    assert _flagged_at(SPAN, screen) is None


def test_a_walk_over_a_genome_is_flagged_once_it_leaves_one_stretch() -> None:
    # A rarest-first walk: the member's singletons wherever they lie.
    walk = [([7], 1, (str(1 + i % 22), 10_000_000 + 3_000_000 * i)) for i in range(10)]
    assert _flagged_at(SPAN, walk) == 2
    # The same walk kept within 20 Mb of its first question is flagged when it steps beyond them ...
    near = [([7], 1, ("20", 30_000_000 + 1_000_000 * i)) for i in range(25)]
    assert _flagged_at(SPAN, near) == 21
    # ... or, if it never does, at its 25th question on the member's alleles.
    nearer = [([7], 1, ("20", 30_000_000 + 100_000 * i)) for i in range(30)]
    assert SPAN.span_free_hits == 25 and _flagged_at(SPAN, nearer) == 25


def _screen() -> list[Question]:
    """A relative's twelve singletons in a row on chromosome 20, then the patient's own candidates."""
    segment = [([7], 1, ("20", 30_000_000 + 100_000 * i)) for i in range(12)]
    rest = [([] if i % 2 else [100 + i], 0 if i % 2 else 1, ("20", 32_000_000 + 500_000 * i)) for i in range(40)]
    return segment + rest


#: Sessions the node and the harness must judge alike: a screen through a shared segment, a rarest-first walk
#: over the genome (a singleton or a doubleton per chromosome), a walk stepping out of 20 Mb, one kept
#: within them, and one over alleles with 10-40 copies on chromosome 1 then 2.
SESSIONS: dict[str, list[Question]] = {
    "screen": _screen(),
    "genome-walk": [([7, 200 + i] if i % 3 == 2 else [7], 2 if i % 3 == 2 else 1, (str(1 + i), 5_000_000 * i))
                    for i in range(12)],
    "stepping-walk": [([7], 1, ("20", 30_000_000 + 1_000_000 * i)) for i in range(25)],
    "contig-walk": [([7], 1, ("20", 30_000_000 + 100_000 * i)) for i in range(30)],
    "common-walk": [([7, *range(300 + 40 * i, 300 + 40 * i + 9 + i)], 10 + i, (str(1 + i // 6), 1_000 * i))
                    for i in range(12)],
}  # fmt: skip


def test_the_node_reads_positions_as_the_harness_does(database: Database) -> None:
    ds = dataset(database, budget=5.0, flag_min_evidence=0.6)
    g = guard(database, watch=SqlAttackWatch(database, None))
    # The guard's rule is the node's default, whose positions test is the harness's ``SPAN``.
    assert (SPAN.min_span, SPAN.span_free_hits) == (NODE_MIN_SPAN, NODE_SPAN_FREE_HITS)
    expected = {name: _flagged_at(SPAN, questions) for name, questions in SESSIONS.items()}
    # What a user of the harness would check first: the screen is no walk, every walk is one.
    assert expected == {"screen": None, "genome-walk": 2, "stepping-walk": 21, "contig-walk": 25, "common-walk": 8}
    flagged: dict[str, int | None] = {}
    for name, questions in SESSIONS.items():
        caller = g.caller(passport(name))
        flagged[name] = None
        for i, (carriers, copies, position) in enumerate(questions):
            ask(g, caller, ds, f"{name}-{i}", carriers, copies, position)
            if caller.principal in flagged_people(database):
                flagged[name] = i + 1
                break
    assert flagged == expected, "the node must flag the sessions the harness does, at the same question"
    # The watch on its own (its own transaction, on either database), as the Beacon's SQLite node counts.
    watch = SqlAttackWatch(database, None)
    alone = {
        name: next(
            (
                i + 1
                for i, (carriers, copies, position) in enumerate(questions)
                if watch.observe(SPAN, f"alone-{name}", f"alone-{name}", "cohort", carriers, copies, position)
            ),
            None,
        )
        for name, questions in SESSIONS.items()
    }
    assert alone == expected
