"""Sessions that look like a membership attack, flagged to the steward from the node's own answers (issue 17).

A rarest-first walk over one person's genome (Raisaro et al. 2017) asks about many rare alleles that one and
the same member of the dataset carries, and nothing else; a likelihood-ratio build-up on one person
(Shringarpure & Bustamante 2015) asks that member's alleles in any order, mostly common ones. A benign
researcher's questions on rare alleles spread over many members, and a clinician screening one patient's
candidate variants asks mostly about alleles the dataset does not hold. The node knows the carriers and the
count of every allele it answers about, so it keeps, per person and dataset, two sums a walk builds up:

- **evidence**: each question on an allele with at most ``rare_max_count`` copies, absent ones included,
  weighs what a "yes" on it is worth to someone testing a carrier's membership (``spend_cost``, the nats the
  privacy budget charges: 0.46 for a singleton or an absent allele, 0.15 for two copies, under 0.02 from
  four). The weight adds to every carrier's evidence and to the person's total. The person is flagged once
  one member's evidence reaches ``min_evidence`` and ``min_share`` of the total plus a small ``prior`` (so a
  session's first question or two alone are no pattern): a rarest-first walk, at its second or third
  question, with about half of the member's budget spent (docs/privacy.md);
- **hits**: each question on an allele with at most ``watch_max_count`` copies (absent ones included) counts
  one hit for every carrier. The person is flagged once one member has ``min_hits`` hits and
  ``min_hit_share`` of the person's watched questions: a walk in any order, whose alleles with a few dozen
  copies come up every few dozen questions, each one too common to weigh as evidence, but all of them the
  member's. It comes long before the walk has spent any of the member's budget.

A screen of one patient's novel variants holds about half absent from the dataset, so both shares stay low
even though the patient's relatives in the dataset carry many of the rest. A screen in genome order that
opens on a segment the patient shares with a relative, before any absent candidate, is a run of the
relative's alleles no count tells from a walk; it stays within a few Mb, where a walk soon asks about the
member's alleles anywhere. So, with ``min_span``, a member counts towards either sum's flag only once the
person's questions on their alleles lie on two chromosomes or ``min_span`` bases apart ("spread"), or once
they are ``span_free_hits`` of the person's questions wherever they lie. An attacker who knows the
rule can keep under both shares with made-up decoy alleles (one per four real questions at a share of
0.8); the harness measures how much power that attacker keeps.

Questions are counted whatever the answer: randomised response and budget exclusions hide the member from
the asker, not from the node. Repeats are answered from the cache and not counted again. The counts of
identities linked into one person (``PrivacyState.link``) are merged with their budgets (``merge_counts``).

The flag is shown to stewards (an audit entry naming the person, a metric, the stewards' page); the answers
are not changed by it. Stopping or slowing a flagged person would tell them that their questions fell on
one member -- that the genome they walked is in the dataset -- which is the very answer the defences hide.

``SessionWatch`` is the rule on one session in memory, as the attack harness measures it;
``SqlAttackWatch`` keeps the same sums in the node's metadata database, shared by every worker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genoshare.audit import AuditLog, Entry
from genoshare.store.db import Database, commit_without_waiting
from genoshare.store.privacy_tables import PrivacyWatch, PrivacyWatchHit

#: The node's positions test (``WatchRule.min_span``, ``span_free_hits``), as the harness measured it: a
#: relative's shared segments here reach about 10 Mb, a relative's run through one about 20 questions.
NODE_MIN_SPAN = 20_000_000
NODE_SPAN_FREE_HITS = 25
#: Under a rule without ``min_span``, only another chromosome marks a member spread (kept for the record).
_NO_SPAN = 2**62
#: How the audit log names a flag.
FLAG_ACTION = "beacon.attack_flag"
#: The longest reason the database keeps (``PrivacyWatch.reason``).
_REASON_LENGTH = 1000
#: Sums compared with a threshold are added in another order by each database: a rounding's leeway.
_LEEWAY = 1e-9


def spend_cost(allele_count: float) -> float:
    """Evidence one "yes" gives about each carrier: ``-log(1 - D)`` with ``D = exp(-allele_count)``.

    It is the evidence (in nats) the answer gives an attacker who assumed the allele absent from
    non-members; singletons cost 0.46, doubletons 0.15, and alleles with 15+ copies under 1e-6. The privacy
    budget charges it per "yes" (``PrivacySettings.cost`` calls it with a scaled count) and the watch adds it
    up per question.
    """
    if allele_count <= 0:
        return 0.0
    return -math.log1p(-math.exp(-allele_count))


@dataclass(frozen=True)
class WatchRule:
    """When a person's questions on one dataset look like a walk over one member's genome."""

    #: Evidence (nats) on one member before a flag can be raised: a "yes" on a singleton and one on two copies.
    min_evidence: float = 0.6
    #: ... and the share of the person's total (plus ``prior``) that member's evidence must be.
    min_share: float = 0.8
    #: Nats added to the total: the first questions of a session (a singleton alone) are not yet a pattern.
    prior: float = 0.15
    #: Alleles with at most this many copies in the dataset are rare; absent ones (0) are counted too.
    rare_max_count: int = 5
    #: Questions on alleles with at most this many copies (absent ones included) are counted for ``min_hits``.
    watch_max_count: int = 50
    #: A walk in any order: this many of the person's watched questions on alleles one member carries ...
    min_hits: int = 8
    #: ... and this share of all their watched questions.
    min_hit_share: float = 0.9
    #: Positions: a member counts towards a flag only once the person's questions on their alleles lie on two
    #: chromosomes or this many bases apart, so a screen in genome order through a segment a patient shares
    #: with a relative is not a walk; None: off (the node's default is ``NODE_MIN_SPAN``).
    min_span: int | None = None
    #: With ``min_span``: this many hits (and ``min_hit_share`` of the questions) flag a member wherever they
    #: lie, so a walk kept within ``min_span`` of its start is flagged too, later; None: no such test.
    span_free_hits: int | None = None

    def counted(self, allele_count: int) -> bool:
        return 0 <= allele_count <= max(self.rare_max_count, self.watch_max_count)

    def weight(self, allele_count: int) -> float:
        """What a question on this allele adds to the evidence.

        An absent allele weighs as a singleton, as the asker saw it; one with more than ``rare_max_count``
        copies weighs nothing (it counts as a hit only).
        """
        return spend_cost(max(allele_count, 1)) if allele_count <= self.rare_max_count else 0.0

    def trips(self, counts: WatchCounts) -> bool:
        """Whether the counts after a question are a walk over one member (``WatchCounts``).

        Either one member's evidence is most of the person's (a rarest-first walk, from its second or third
        question), or most of the person's watched questions are about alleles one member carries (a walk in
        any order: the member's alleles with a few dozen copies come up every few dozen questions, each one
        too common to weigh as evidence, but a benign session's spread over many members).
        """
        return self._by_evidence(counts) or self._by_hits(counts)

    def _by_evidence(self, counts: WatchCounts) -> bool:
        _, total, _, top, _, _ = counts
        return top >= self.min_evidence - _LEEWAY and top >= self.min_share * (total + self.prior) - _LEEWAY

    def _by_hits(self, counts: WatchCounts) -> bool:
        questions, _, _, _, most, anywhere = counts
        by_span = (
            self.span_free_hits is not None
            and anywhere >= self.span_free_hits
            and anywhere >= self.min_hit_share * questions - _LEEWAY
        )
        return by_span or (most >= self.min_hits and most >= self.min_hit_share * questions - _LEEWAY)

    def reason(self, counts: WatchCounts) -> str:
        """Why, in plain words, for the steward."""
        questions, total, top_hits, top, most, anywhere = counts
        if self._by_evidence(counts):
            return (
                f"{top_hits} of this person's {questions} questions about rare or absent variants (at most "
                f"{self.watch_max_count} copies in the dataset) were about variants that one and the same "
                f"participant carries ({top:.2f} of their {total:.2f} nats of evidence): the pattern of someone "
                "checking whether a genome they hold is in the dataset"
            )
        return (
            f"{max(most, anywhere)} of this person's {questions} questions about rare or absent variants (at most "
            f"{self.watch_max_count} copies in the dataset) were about variants that one and the same participant "
            "carries: the pattern of someone checking whether a genome they hold is in the dataset"
        )


@dataclass(frozen=True)
class Flag:
    """A person flagged on a dataset, as the audit entry and the stewards' page show it."""

    principal: str
    account: str
    dataset_id: str
    top_hits: int
    rare_questions: int
    reason: str


class SessionWatch:
    """``WatchRule`` over one session, in memory: what the attack harness measures the node's rule with."""

    def __init__(self, rule: WatchRule) -> None:
        self.rule = rule
        self.evidence: dict[int, float] = {}
        self.hits: dict[int, int] = {}
        #: With ``rule.min_span``: where the person first asked about each member's alleles, and the members
        #: whose alleles they have asked about far from there.
        self.first: dict[int, tuple[str, int]] = {}
        self.spread: set[int] = set()
        self.questions = 0
        self.total = 0.0
        self.flagged = False

    def observe(self, carriers: Iterable[int], allele_count: int, position: tuple[str, int] | None = None) -> bool:
        """Count one (non-repeated) question; True the first time the session trips the rule.

        ``position`` (chromosome, base): without it, under a rule with a ``min_span``, the carriers count as
        spread (where the question lies is not known, so it is judged as by the rule without positions).
        """
        if self.flagged or not self.rule.counted(allele_count):
            return False
        weight = self.rule.weight(allele_count)
        self.questions += 1
        self.total += weight
        top, top_hits, most, anywhere = 0.0, 0, 0, 0
        for member in carriers:
            evidence = self.evidence[member] = self.evidence.get(member, 0.0) + weight
            hits = self.hits[member] = self.hits.get(member, 0) + 1
            anywhere = max(anywhere, hits)
            if self.rule.min_span is not None and not self._spread(member, position, self.rule.min_span):
                continue
            if (evidence, hits) > (top, top_hits):
                top, top_hits = evidence, hits
            most = max(most, hits)
        self.flagged = self.rule.trips((self.questions, self.total, top_hits, top, most, anywhere))
        return self.flagged

    def _spread(self, member: int, position: tuple[str, int] | None, min_span: int) -> bool:
        """Whether the member's alleles asked so far lie on two chromosomes or ``min_span`` bases apart."""
        if member not in self.spread:
            chromosome, base = self.first.setdefault(member, position) if position is not None else ("", 0)
            if position is None or position[0] != chromosome or abs(position[1] - base) >= min_span:
                self.spread.add(member)
        return member in self.spread


_WATCH = PrivacyWatch.__table__
_HITS = PrivacyWatchHit.__table__
_THIS_WATCH = (_WATCH.c.principal == bindparam("p")) & (_WATCH.c.dataset_id == bindparam("d"))
_THIS_HITS = (_HITS.c.principal == bindparam("p")) & (_HITS.c.dataset_id == bindparam("d"))
_COUNT = (
    update(_WATCH)
    .where(_THIS_WATCH)
    .values(rare_questions=_WATCH.c.rare_questions + 1, evidence=_WATCH.c.evidence + bindparam("w"))
    .returning(_WATCH.c.rare_questions, _WATCH.c.evidence, _WATCH.c.flagged_at)
)
#: A member is spread once a question on their alleles lies on another chromosome than the first one asked,
#: or ``min_span`` bases from it, or where it lies is not known (no position: judged as without positions).
_FAR = (
    _HITS.c.spread
    | bindparam("c").is_(None)
    | (
        _HITS.c.first_chromosome.is_not(None)
        & (
            (_HITS.c.first_chromosome != bindparam("c"))
            | (func.abs(_HITS.c.first_start - bindparam("s")) >= bindparam("span"))
        )
    )
)
_HIT = (
    update(_HITS)
    .where(_THIS_HITS, _HITS.c.member.in_(bindparam("members", expanding=True)))
    .values(
        hits=_HITS.c.hits + 1,
        evidence=_HITS.c.evidence + bindparam("w"),
        spread=_FAR,
        first_chromosome=func.coalesce(_HITS.c.first_chromosome, bindparam("c")),
        first_start=func.coalesce(_HITS.c.first_start, bindparam("s")),
    )
    .returning(_HITS.c.member, _HITS.c.hits, _HITS.c.evidence, _HITS.c.spread)
)
_FLAG = (
    update(_WATCH)
    .where(_THIS_WATCH, _WATCH.c.flagged_at.is_(None))
    .values(
        flagged_at=bindparam("at"), account=bindparam("account"), top_hits=bindparam("top"), reason=bindparam("why")
    )
)

#: On PostgreSQL the count is this one statement in autocommit, where the transaction below takes seven round
#: trips (BEGIN, the pool's ping, the durability, three statements, COMMIT) on most Beacon answers (rare and
#: absent alleles are most alleles). The hits are counted only while the person is not flagged, as below; the
#: member with the most evidence among this question's spread carriers (all of them under a rule without
#: ``min_span``) comes back with its hits, and the most hits of the spread carriers and of all of them.
#: The counting is the CTEs ``COUNT_CTES_POSTGRESQL``, run only ``{when}`` holds: alone, always; inside a
#: Beacon answer's own write (``privacy_state``, its one statement), only if that write was made.
COUNT_CTES_POSTGRESQL = """
    watched AS (
        INSERT INTO privacy_watch (principal, dataset_id, rare_questions, evidence) SELECT :p, :d, 1, :w WHERE {when}
        ON CONFLICT (principal, dataset_id) DO UPDATE
        SET rare_questions = privacy_watch.rare_questions + 1, evidence = privacy_watch.evidence + :w
        RETURNING rare_questions, evidence, flagged_at
    ), hit AS (
        INSERT INTO privacy_watch_hits (principal, dataset_id, member, hits, evidence, first_chromosome,
            first_start, spread)
        SELECT :p, :d, m.member, 1, :w, CAST(:c AS varchar), CAST(:s AS bigint), CAST(:c AS varchar) IS NULL
        FROM unnest(CAST(:carriers AS integer[])) AS m(member)
        WHERE EXISTS (SELECT FROM watched) AND (SELECT flagged_at FROM watched) IS NULL
        ON CONFLICT (principal, dataset_id, member) DO UPDATE
        SET hits = privacy_watch_hits.hits + 1, evidence = privacy_watch_hits.evidence + :w,
            spread = privacy_watch_hits.spread OR CAST(:c AS varchar) IS NULL OR (
                privacy_watch_hits.first_chromosome IS NOT NULL AND (
                    privacy_watch_hits.first_chromosome <> CAST(:c AS varchar)
                    OR abs(privacy_watch_hits.first_start - CAST(:s AS bigint)) >= CAST(:span AS bigint))),
            first_chromosome = coalesce(privacy_watch_hits.first_chromosome, CAST(:c AS varchar)),
            first_start = coalesce(privacy_watch_hits.first_start, CAST(:s AS bigint))
        RETURNING hits, evidence, spread OR NOT CAST(:by_span AS boolean) AS counts
    ), top AS (
        SELECT hits, evidence FROM hit WHERE counts ORDER BY evidence DESC, hits DESC LIMIT 1
    )
"""
#: What the counting returns (``WatchCounts``, with the flag's time first): columns of the statement's result.
COUNT_RESULT_POSTGRESQL = """
    (SELECT rare_questions FROM watched), (SELECT evidence FROM watched), (SELECT flagged_at FROM watched),
    (SELECT hits FROM top), (SELECT evidence FROM top), (SELECT max(hits) FROM hit WHERE counts),
    (SELECT max(hits) FROM hit)
"""
_COUNT_POSTGRESQL = text(
    f"WITH {COUNT_CTES_POSTGRESQL.format(when='TRUE')} "
    f"SELECT {COUNT_RESULT_POSTGRESQL}, set_config('synchronous_commit', :synchronous_commit, true)"
)


#: After a question: the person's watched questions and their total weight, the hits and evidence of the
#: member with the most evidence among the question's spread carriers (``WatchRule.min_span``; all of them
#: without), the most hits any of those has, and the most hits any carrier has (``span_free_hits``).
WatchCounts = tuple[int, float, int, float, int, int]


def watch_counts(row: Sequence[Any]) -> WatchCounts | None:
    """The counts from ``COUNT_RESULT_POSTGRESQL``'s columns; None when nothing is left to judge.

    Nothing is left when the person is flagged already, or the question had no carrier.
    """
    rare, total, flagged_at, top_hits, top, most, anywhere = row
    if flagged_at is not None or anywhere is None:
        return None
    if top is None:  # no carrier spread yet
        return int(rare), float(total), 0, 0.0, 0, int(anywhere)
    return int(rare), float(total), int(top_hits), float(top), int(most), int(anywhere)


def counting(
    rule: WatchRule, weight: float, carriers: Sequence[int], position: tuple[str, int] | None
) -> dict[str, Any]:
    """The counting statements' parameters besides the person and dataset (``COUNT_CTES_POSTGRESQL``, ``_HIT``).

    The carriers go as one array literal: psycopg adapts a list value by value, which costs more than the
    database's work on it.
    """
    chromosome, start = position if position is not None else (None, None)
    return {
        "w": weight,
        "carriers": "{" + ",".join(map(str, carriers)) + "}",
        "c": chromosome,
        "s": start,
        "span": rule.min_span if rule.min_span is not None else _NO_SPAN,
        "by_span": rule.min_span is not None,
    }


class SqlAttackWatch:
    """The rule's sums in the metadata database; a new flag is written to the audit log.

    Only questions on rare or absent alleles are counted (a few statements each, in a transaction of their
    own, after the answer's own); common alleles cost nothing here.
    """

    def __init__(self, database: Database, audit: AuditLog | None, *, wait_for_disk: bool = False) -> None:
        self.database = database
        self.audit = audit
        #: ``DatabaseSettings.privacy_writes_wait_for_disk``, as for the answer's own write.
        self.wait_for_disk = wait_for_disk
        postgresql = database.engine.dialect.name == "postgresql"
        self._autocommit = database.engine.execution_options(isolation_level="AUTOCOMMIT") if postgresql else None

    def observe(
        self,
        rule: WatchRule,
        principal: str,
        account: str,
        dataset_id: str,
        carriers: Iterable[int],
        allele_count: int,
        position: tuple[str, int] | None = None,
    ) -> Flag | None:
        """Count one question; the flag when this question raised it (once per person and dataset).

        ``position``: the allele's chromosome and start (``WatchRule.min_span``); None when not known.
        """
        if not rule.counted(allele_count):
            return None
        members = list(carriers)
        params = counting(rule, rule.weight(allele_count), members, position)
        try:
            flag = self._count(rule, principal, account, dataset_id, members, params)
        except IntegrityError:  # a concurrent first question of the same person created a row first
            flag = self._count(rule, principal, account, dataset_id, members, params)
        self._report(flag)
        return flag

    def judge(self, rule: WatchRule, principal: str, account: str, dataset_id: str, counts: WatchCounts) -> Flag | None:
        """The flag, if the counts a Beacon answer's own write made (``COUNT_CTES_POSTGRESQL``) trip the rule."""
        if not rule.trips(counts):
            return None
        assert self._autocommit is not None, "only PostgreSQL counts with the answer's write"
        with self._autocommit.connect() as connection:
            flag = self._flag(connection, rule, {"p": principal, "d": dataset_id}, account, counts)
        self._report(flag)
        return flag

    def review(self, principal: str, rules: Mapping[str, WatchRule], account: str, note: str) -> list[Flag]:
        """Judge the person's counts now, on every dataset with a rule in ``rules`` (dataset id -> rule).

        After a steward links identities (``merge_counts``), a walk split over them may trip the rule on its
        merged counts; judged only at the person's next question on the walked member, it would be flagged
        never if the walk had ended. ``account`` and ``note`` (why now) go into the flag.
        """
        flags = []
        watched = select(_WATCH.c.dataset_id, _WATCH.c.rare_questions, _WATCH.c.evidence).where(
            _WATCH.c.principal == principal, _WATCH.c.flagged_at.is_(None)
        )
        with self.database.engine.begin() as connection:
            for dataset_id, rare, total in connection.execute(watched).all():
                rule = rules.get(dataset_id)
                these = (_HITS.c.principal == principal) & (_HITS.c.dataset_id == dataset_id)
                anywhere = connection.execute(select(func.max(_HITS.c.hits)).where(these)).scalar_one()
                if rule is None or anywhere is None:
                    continue
                spread = these & _HITS.c.spread if rule.min_span is not None else these
                top = connection.execute(
                    select(_HITS.c.hits, _HITS.c.evidence)
                    .where(spread)
                    .order_by(_HITS.c.evidence.desc(), _HITS.c.hits.desc())
                    .limit(1)
                ).first()
                most = connection.execute(select(func.max(_HITS.c.hits)).where(spread)).scalar_one()
                ids = {"p": principal, "d": dataset_id}
                top_hits, evidence = (int(top[0]), float(top[1])) if top is not None else (0, 0.0)
                counts = (int(rare), float(total), top_hits, evidence, int(most or 0), int(anywhere))
                flag = self._flag(connection, rule, ids, account, counts, note)
                if flag is not None:
                    flags.append(flag)
        for flag in flags:
            self._report(flag)
        return flags

    def _report(self, flag: Flag | None) -> None:
        if flag is not None and self.audit is not None:
            self.audit.record(
                Entry(
                    actor=flag.principal,
                    action=FLAG_ACTION,
                    resource=f"datasets/{flag.dataset_id}",
                    decision="flag",
                    reason=flag.reason,
                    details={"account": flag.account, "top_hits": flag.top_hits, "rare_questions": flag.rare_questions},
                )
            )

    def _count(
        self, rule: WatchRule, principal: str, account: str, dataset_id: str, members: list[int], params: dict[str, Any]
    ) -> Flag | None:
        ids = {"p": principal, "d": dataset_id}
        weight = params["w"]
        if self._autocommit is not None:
            return self._count_postgresql(rule, ids, account, params)
        chromosome, start = params["c"], params["s"]
        with self.database.engine.begin() as connection:
            if not self.wait_for_disk:
                commit_without_waiting(connection)
            row = connection.execute(_COUNT, {**ids, "w": weight}).one_or_none()
            if row is None:
                first = {"principal": principal, "dataset_id": dataset_id, "rare_questions": 1, "evidence": weight}
                connection.execute(insert(_WATCH), first)
                rare, total, flagged_at = 1, weight, None
            else:
                rare, total, flagged_at = int(row[0]), float(row[1]), row[2]
            if flagged_at is not None or not members:
                return None
            counted = connection.execute(_HIT, {**ids, **params, "members": members})
            hits = {int(m): (int(h), float(e), bool(far)) for m, h, e, far in counted}
            fresh = [m for m in members if m not in hits]
            if fresh:
                first = {"first_chromosome": chromosome, "first_start": start, "spread": chromosome is None}
                connection.execute(
                    insert(_HITS),
                    [
                        {"principal": principal, "dataset_id": dataset_id, "member": m, "hits": 1, "evidence": weight}
                        | first
                        for m in fresh
                    ],
                )
                hits.update(dict.fromkeys(fresh, (1, weight, chromosome is None)))
            spread = [(h, e) for h, e, far in hits.values() if far or rule.min_span is None]
            top_hits, top = max(spread, key=lambda hit: (hit[1], hit[0]), default=(0, 0.0))
            most = max((h for h, _ in spread), default=0)
            anywhere = max(hit[0] for hit in hits.values())
            return self._flag(connection, rule, ids, account, (rare, total, top_hits, top, most, anywhere))

    def _count_postgresql(
        self, rule: WatchRule, ids: dict[str, str], account: str, params: dict[str, Any]
    ) -> Flag | None:
        assert self._autocommit is not None
        durability = "on" if self.wait_for_disk else "off"
        with self._autocommit.connect() as connection:
            row = connection.execute(_COUNT_POSTGRESQL, {**ids, **params, "synchronous_commit": durability}).one()
            counts = watch_counts(row[:7])
            return None if counts is None else self._flag(connection, rule, ids, account, counts)

    @staticmethod
    def _flag(
        connection: Connection, rule: WatchRule, ids: dict[str, str], account: str, counts: WatchCounts, note: str = ""
    ) -> Flag | None:
        """The flag, written once, if the counts after this question trip the rule; ``note`` ends its reason."""
        rare, _, top_hits, _, most, anywhere = counts
        if not rule.trips(counts):
            return None
        why = (rule.reason(counts) + note)[:_REASON_LENGTH]
        top = max(top_hits, most, anywhere if rule._by_hits(counts) else 0)
        flagging = {**ids, "at": datetime.now(UTC), "account": account, "top": top, "why": why}
        if connection.execute(_FLAG, flagging).rowcount != 1:
            return None  # another worker raised it first
        return Flag(ids["p"], account, ids["d"], top, rare, why)


def merge_counts(session: Session, keep: str, gone: str) -> None:
    """Count everything ``gone`` asked as ``keep``'s, when a link makes them one person.

    Questions, hits and evidence add up, so a walk split over identities that are later linked is one walk
    (and a member whose alleles the two asked at two places is spread, ``WatchRule.min_span``):
    a steward's link judges the merged sums at once (``SqlAttackWatch.review``); a passport's, at the person's
    next question on the walked member. A flag either identity had stays raised (the earlier one wins).
    """
    for moved in session.scalars(select(PrivacyWatch).where(PrivacyWatch.principal == gone)).all():
        kept = session.get(PrivacyWatch, (keep, moved.dataset_id))
        if kept is None:
            kept = PrivacyWatch(principal=keep, dataset_id=moved.dataset_id, rare_questions=0, evidence=0.0)
            session.add(kept)
        kept.rare_questions += moved.rare_questions
        kept.evidence += moved.evidence
        if moved.flagged_at is not None and (kept.flagged_at is None or moved.flagged_at < kept.flagged_at):
            kept.flagged_at, kept.account = moved.flagged_at, moved.account
            kept.top_hits, kept.reason = moved.top_hits, moved.reason
    for hit in session.scalars(select(PrivacyWatchHit).where(PrivacyWatchHit.principal == gone)).all():
        target = session.get(PrivacyWatchHit, (keep, hit.dataset_id, hit.member))
        if target is None:
            target = PrivacyWatchHit(principal=keep, dataset_id=hit.dataset_id, member=hit.member, hits=0, evidence=0.0)
            session.add(target)
        target.hits += hit.hits
        target.evidence += hit.evidence
        # Each identity asked the member's alleles first somewhere: at two places, the member is spread (the
        # dataset's span is not known here; a walk split over identities is flagged rather than missed).
        first, other = (target.first_chromosome, target.first_start), (hit.first_chromosome, hit.first_start)
        target.spread = bool(target.spread or hit.spread) or (None not in (*first, *other) and first != other)
        if target.first_chromosome is None:
            target.first_chromosome, target.first_start = hit.first_chromosome, hit.first_start
    session.flush()
    for table in (PrivacyWatchHit, PrivacyWatch):
        session.execute(delete(table).where(table.principal == gone))
