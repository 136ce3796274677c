"""Budgets follow the person: identities a passport links share one budget; the attack watch's counts.

Against the real metadata database (SQLite and PostgreSQL); the attacks through a server are in
``tests/security/test_linked_identity_budgets.py`` and ``tests/security/test_attack_flags.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from pyroaring import BitMap
from sqlalchemy import select
from test_defences import ask, dataset, guard

from genoshare.access.attack_watch import SessionWatch, SqlAttackWatch, WatchRule
from genoshare.access.passports import Identity, Visa
from genoshare.access.privacy import LINKED_IDENTITIES, PrivacySettings, linked_identities
from genoshare.audit import AuditLog
from genoshare.errors import InvalidInput
from genoshare.store.db import Database
from genoshare.store.models import AuditEvent
from genoshare.store.privacy_tables import PrivacyWatch

IDP = "https://login.example.org"
ORCID = "https://orcid.org"


def passport(subject: str, *links: tuple[str, str], issuer: str = IDP) -> Identity:
    """An identity as the verifier accepts it, with one LinkedIdentities visa listing ``links``."""
    visas: tuple[Visa, ...] = ()
    if links:
        value = ";".join(f"{sub},{iss.replace(':', '%3A').replace('/', '%2F')}" for sub, iss in links)
        visas = (Visa(LINKED_IDENTITIES, value, issuer, "system", 0, issuer, 2**31, f"link-{subject}"),)
    return Identity(subject, issuer, visas)


def test_a_linked_identities_value_is_read_as_the_spec_writes_it() -> None:
    value = "123456,https%3A%2F%2Fexample.org%2Fa%7Cb%2Cc;7890,https%3A%2F%2Fexample2.org"
    assert linked_identities(value) == [("123456", "https://example.org/a|b,c"), ("7890", "https://example2.org")]
    assert linked_identities("no-comma;,https%3A%2F%2Fx.org;sub,") == []


def test_a_second_identity_a_visa_links_finds_the_budget_spent(database: Database) -> None:
    ds = dataset(database, budget=0.5)
    g = guard(database)
    first = g.caller(passport("attacker-1"))
    assert ask(g, first, ds, "a1", [7]).exists  # a singleton costs 0.46 of member 7's 0.5
    assert not ask(g, first, ds, "a2", [7]).exists
    second = g.caller(passport("attacker-2", ("attacker-1", IDP)))
    assert second.principal == first.principal and second.linked
    assert not ask(g, second, ds, "a3", [7]).exists
    # The link holds for good: a later passport of the second identity without the visa is still the person.
    assert g.caller(passport("attacker-2")).principal == first.principal


def test_identities_listing_the_same_orcid_are_one_person(database: Database) -> None:
    ds = dataset(database, budget=0.5)
    other = "https://other-idp.example.org"
    g = guard(database, identity_link_issuers=[IDP, other])
    work = g.caller(passport("alice-work", ("0000-0002-1825-0097", ORCID)))
    home = g.caller(passport("alice-home", ("0000-0002-1825-0097", ORCID), issuer=other))
    assert work.principal == home.principal
    assert ask(g, work, ds, "a1", [3]).exists
    assert not ask(g, home, ds, "a2", [3]).exists


def test_spellings_of_one_orcid_or_email_are_one_person_and_a_malformed_orcid_nobody(database: Database) -> None:
    g = guard(database, identity_link_issuers=[IDP])
    # ORCID's own documented example iDs, one with the check character X.
    for n, (one, other) in enumerate(
        [
            (("0000-0002-1825-0097", ORCID), ("https://orcid.org/0000-0002-1825-0097/", "http://orcid.org/")),
            (("https://www.orcid.org/0000-0002-1694-233X", ORCID), ("0000-0002-1694-233x", "orcid.org")),
            (("bob@Mail.Example.ORG", IDP), ("bob@mail.example.org", IDP)),
        ]
    ):
        assert g.caller(passport(f"a{n}", one)).principal == g.caller(passport(f"b{n}", other)).principal
    for malformed in ["0000-0002-1825-0098", "0000-0002-1825-009", "https://orcid.org/", "not-an-orcid"]:
        first = g.caller(passport(f"x-{malformed}", (malformed, ORCID)))
        assert g.accounts_of(passport(f"y-{malformed}", (malformed, ORCID))) == (f"y-{malformed}@{IDP}",)
        assert g.caller(passport(f"y-{malformed}", (malformed, ORCID))).principal != first.principal


def test_an_issuer_not_trusted_to_link_links_only_its_own_accounts(database: Database) -> None:
    """A sloppy broker that lets a user type in someone else's ORCID or account merges no budgets."""
    g = guard(database, identity_link_issuers=["https://vetted-broker.example.org"])
    victim = g.caller(passport("victim", ("0000-0002-1825-0097", ORCID)))
    mallory = passport("mallory", ("0000-0002-1825-0097", ORCID), ("victim", "https://elsewhere.example.org"))
    assert g.caller(mallory).principal != victim.principal
    # Its own accounts it still links: the issuer vouches for them.
    assert g.caller(passport("mallory-2", ("mallory", IDP))).principal == g.caller(passport("mallory")).principal


def test_unlinked_identities_keep_their_own_budgets(database: Database) -> None:
    ds = dataset(database, budget=0.5)
    g = guard(database)
    one = g.caller(passport("bob", ("0000-0001-0000-0009", ORCID)))
    other = g.caller(passport("carol", ("0000-0001-0000-0017", ORCID)))
    assert one.principal != other.principal
    assert ask(g, one, ds, "a1", [5]).exists
    assert ask(g, other, ds, "a2", [5]).exists


def _audit(database: Database, tmp_path: Path) -> AuditLog:
    audit = AuditLog(database, tmp_path / "audit.key")
    audit.ensure_head()
    audit.create_key()
    return audit


#: What one question on an allele with one (or no), two or three copies weighs: -log(1 - exp(-copies)).
SINGLETON, DOUBLETON, TRIPLETON = (-math.log(1 - math.exp(-c)) for c in (1, 2, 3))


def test_the_watch_flags_a_walk_over_one_member_and_not_a_spread_of_questions(
    database: Database, tmp_path: Path
) -> None:
    rule = WatchRule()  # the node default: 0.6 nats on one member, 80 % of the person's (plus 0.15)
    watch = SqlAttackWatch(database, _audit(database, tmp_path))
    # A benign session: rare questions whose carriers are all different people, then common alleles.
    for member in range(20):
        assert watch.observe(rule, "benign@idp", "benign@idp", "cohort", [member, 100 + member], 2) is None
    assert watch.observe(rule, "benign@idp", "benign@idp", "cohort", list(range(50)), 50) is None
    # A walk over member 7's doubletons: 4 weigh 0.58 < 0.6, 5 weigh 0.73, all of the person's 0.73 + 0.15.
    assert 4 * DOUBLETON < 0.6 <= 5 * DOUBLETON
    flags = [watch.observe(rule, "walker@idp", "walker-2@idp", "cohort", [7, m], 2) for m in range(10, 16)]
    assert [flag is not None for flag in flags] == [False, False, False, False, True, False]
    flag = flags[4]
    assert flag is not None and (flag.top_hits, flag.rare_questions, flag.account) == (5, 5, "walker-2@idp")
    with database.session() as session:
        rows = session.scalars(select(PrivacyWatch).where(PrivacyWatch.flagged_at.is_not(None))).all()
        assert [(row.principal, row.dataset_id) for row in rows] == [("walker@idp", "cohort")]
        events = session.scalars(select(AuditEvent).where(AuditEvent.action == "beacon.attack_flag")).all()
        assert [(e.actor, e.resource) for e in events] == [("walker@idp", "datasets/cohort")]
    # The in-memory rule the harness measures gives the same answer on the same questions.
    session_watch = SessionWatch(rule)
    assert [session_watch.observe(BitMap([7, m]), 2) for m in range(10, 16)] == [False] * 4 + [True, False]


def test_a_screen_of_one_patients_candidates_is_not_a_walk_over_their_relative(
    database: Database, tmp_path: Path
) -> None:
    """Half the candidates are absent from the dataset; the others are one relative's singletons.

    Counting only the present rare alleles, every one of them is the relative's: the rule the node had
    before flagged this at the sixth. The absent candidates weigh as much, so the relative's share is half.
    """
    watch = SqlAttackWatch(database, _audit(database, tmp_path))
    memory = SessionWatch(WatchRule())
    for i in range(40):
        carriers, count = ([], 0) if i % 2 == 0 else ([7], 1)
        assert watch.observe(WatchRule(), "clinician@idp", "clinician@idp", "cohort", carriers, count) is None
        assert not memory.observe(carriers, count)
    assert memory.evidence[7] == pytest.approx(20 * SINGLETON)
    assert memory.total == pytest.approx(40 * SINGLETON)
    # The same relative's alleles asked with nothing absent in between are a walk, flagged at the second.
    walk = [watch.observe(WatchRule(), "walker@idp", "walker@idp", "cohort", [7], 1) for _ in range(3)]
    assert [flag is not None for flag in walk] == [False, True, False]


def test_a_walk_split_over_two_identities_is_flagged_once_they_are_linked(database: Database) -> None:
    ds = dataset(database, budget=5.0, flag_min_evidence=0.6)
    g = guard(database, watch=SqlAttackWatch(database, None))
    first, second = g.caller(passport("split-1")), g.caller(passport("split-2"))
    ask(g, first, ds, "a1", [7])  # one singleton of member 7 each: 0.46, under 0.6
    ask(g, second, ds, "a2", [7])
    with database.session() as session:
        assert session.scalar(select(PrivacyWatch.flagged_at).where(PrivacyWatch.flagged_at.is_not(None))) is None
    person = g.link_accounts(first.account or "", second.account or "", by="steward")
    # A third of member 7's alleles, with three copies (0.05): 0.51 for either identity alone, 0.97 for the person.
    assert SINGLETON + TRIPLETON < 0.6 <= 2 * SINGLETON + TRIPLETON
    ask(g, g.caller(passport("split-2")), ds, "a3", [7, 8, 9], 3)
    with database.session() as session:
        rows = session.scalars(select(PrivacyWatch)).all()
    assert [(row.principal, row.rare_questions, row.flagged_at is not None) for row in rows] == [(person, 3, True)]


def test_the_watch_is_shared_by_two_server_processes(database: Database, database_url: str) -> None:
    """A walk whose questions go to two workers on one database is one walk, flagged once."""
    other_database = Database(database_url)
    try:
        one, two = SqlAttackWatch(database, None), SqlAttackWatch(other_database, None)
        flags = [
            (one if i % 2 else two).observe(WatchRule(), "walker@idp", "walker@idp", "cohort", [7, 20 + i], 2)
            for i in range(7)
        ]
        assert [flag is not None for flag in flags] == [False] * 4 + [True, False, False]
    finally:
        other_database.dispose()


def test_the_node_default_flags_through_the_guard_and_repeats_do_not_count(database: Database) -> None:
    ds = dataset(database, budget=5.0, flag_min_evidence=0.6)
    watch = SqlAttackWatch(database, None)
    g = guard(database, watch=watch)
    walker = g.caller(passport("walker"))
    for _ in range(3):
        for key in ("a", "b", "c", "d"):
            ask(g, walker, ds, key, [7, 8])  # four doubletons of member 7, asked three times each: 0.58
    with database.session() as session:
        assert session.scalar(select(PrivacyWatch.flagged_at)) is None
    ask(g, walker, ds, "e", [7, 8])
    with database.session() as session:
        row = session.scalars(select(PrivacyWatch)).one()
        assert row.flagged_at is not None and row.rare_questions == 5


@pytest.mark.parametrize(
    ("name", "value"), [("flag_min_evidence", -0.5), ("flag_min_evidence", "4"), ("flag_min_share", 1.5)]
)
def test_a_flag_setting_that_makes_no_sense_is_refused(database: Database, name: str, value: object) -> None:
    with pytest.raises(InvalidInput):
        PrivacySettings.merged(PrivacySettings(), {name: value}, "test")
