"""A steward's link judges the person's merged attack-watch counts at once (``SqlAttackWatch.review``).

A walk split over two identities that has ended would otherwise be flagged never: the merged counts were
judged only at the person's next question. Against the real metadata database (SQLite and PostgreSQL); the
command line's link through a server is in ``tests/security/test_attack_flags.py``.
"""

from __future__ import annotations

from sqlalchemy import select
from test_defences import ask, dataset, guard
from test_person_budgets import passport

from genoshare.access.attack_watch import SqlAttackWatch, WatchRule
from genoshare.store.db import Database
from genoshare.store.privacy_tables import PrivacyWatch


def test_a_link_flags_a_split_walk_once_and_spares_a_person_with_nothing_to_flag(database: Database) -> None:
    ds = dataset(database, budget=5.0, flag_min_evidence=0.6)
    watch = SqlAttackWatch(database, None)
    g = guard(database, watch=watch)
    first, second = g.caller(passport("split-1")), g.caller(passport("split-2"))
    ask(g, first, ds, "a1", [7])  # one singleton of member 7 each: 0.46 nats, under 0.6
    ask(g, second, ds, "a2", [7])
    bystander = g.caller(passport("bystander"))
    ask(g, bystander, ds, "a3", [8])
    rules = {ds.id: WatchRule()}
    assert watch.review(bystander.principal or "", rules, "bystander", "") == []

    person = g.link_accounts(first.account or "", second.account or "", by="steward")
    flags = watch.review(person, rules, second.account or "", "; linked by the steward")
    assert [(f.principal, f.dataset_id, f.top_hits, f.rare_questions) for f in flags] == [(person, ds.id, 2, 2)]
    assert flags[0].reason.endswith("; linked by the steward")
    assert watch.review(person, rules, second.account or "", "") == [], "a person is flagged once per dataset"
    with database.session() as session:
        rows = session.scalars(select(PrivacyWatch).where(PrivacyWatch.flagged_at.is_not(None))).all()
    assert [(row.principal, row.account) for row in rows] == [(person, second.account)]
