"""Sessions that look like a membership attack, flagged to the steward from the node's own answers (issue 17).

A rarest-first walk over one person's genome (Raisaro et al. 2017) and a likelihood-ratio build-up on one
person (Shringarpure & Bustamante 2015) both ask about many rare alleles that one and the same member of the
dataset carries; a benign researcher's questions on rare alleles spread over many members. The node knows the
carriers of every allele it answers about, so it counts, per person and dataset, the questions on rare
alleles (present with at most ``rare_max_count`` copies) that each member carries, and flags the person once
one member carries at least ``min_hits`` of them and at least ``min_share`` of all.

Questions are counted whatever the answer: randomised response and budget exclusions hide the member from
the asker, not from the node, so the flag needs no "yes" and can come before that member's budget is spent
(a rule on "yes" answers, which the harness measured first, came a dozen questions later, after it). Repeats
are answered from the cache and not counted again.

The flag is shown to stewards (an audit entry naming the person, a metric, the stewards' page); the answers
are not changed by it. Stopping or slowing a flagged person would tell them that their questions fell on
one member -- that the genome they walked is in the dataset -- which is the very answer the defences hide.

``SessionWatch`` is the rule on one session in memory, as the attack harness measures it;
``SqlAttackWatch`` keeps the same counts in the node's metadata database, shared by every worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.exc import IntegrityError

from genoshare.audit import AuditLog, Entry
from genoshare.store.db import Database, commit_without_waiting
from genoshare.store.privacy_tables import PrivacyWatch, PrivacyWatchHit

#: How the audit log names a flag.
FLAG_ACTION = "beacon.attack_flag"


@dataclass(frozen=True)
class WatchRule:
    """When a person's questions on one dataset look like a walk over one member's genome."""

    #: Questions on alleles one member carries before a flag can be raised.
    min_hits: int = 6
    #: ... and the share of all the person's rare questions those must be.
    min_share: float = 0.5
    #: Alleles with at most this many copies in the dataset are rare.
    rare_max_count: int = 5

    def rare(self, allele_count: int) -> bool:
        return 0 < allele_count <= self.rare_max_count

    def trips(self, top_hits: int, rare_questions: int) -> bool:
        return top_hits >= self.min_hits and top_hits >= self.min_share * rare_questions

    def reason(self, top_hits: int, rare_questions: int) -> str:
        """Why, in plain words, for the steward."""
        return (
            f"{top_hits} of this person's {rare_questions} questions about rare variants (at most "
            f"{self.rare_max_count} copies in the dataset) were about variants that one and the same participant "
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
        self.hits: dict[int, int] = {}
        self.rare_questions = 0
        self.flagged = False

    def observe(self, carriers: Iterable[int], allele_count: int) -> bool:
        """Count one (non-repeated) question; True the first time the session trips the rule."""
        if self.flagged or not self.rule.rare(allele_count):
            return False
        self.rare_questions += 1
        top = 0
        for member in carriers:
            hits = self.hits[member] = self.hits.get(member, 0) + 1
            top = max(top, hits)
        self.flagged = self.rule.trips(top, self.rare_questions)
        return self.flagged


_WATCH = PrivacyWatch.__table__
_HITS = PrivacyWatchHit.__table__
_THIS_WATCH = (_WATCH.c.principal == bindparam("p")) & (_WATCH.c.dataset_id == bindparam("d"))
_THIS_HITS = (_HITS.c.principal == bindparam("p")) & (_HITS.c.dataset_id == bindparam("d"))
_COUNT = (
    update(_WATCH)
    .where(_THIS_WATCH)
    .values(rare_questions=_WATCH.c.rare_questions + 1)
    .returning(_WATCH.c.rare_questions, _WATCH.c.flagged_at)
)
_HIT = (
    update(_HITS)
    .where(_THIS_HITS, _HITS.c.member.in_(bindparam("members", expanding=True)))
    .values(hits=_HITS.c.hits + 1)
    .returning(_HITS.c.member, _HITS.c.hits)
)
_FLAG = (
    update(_WATCH)
    .where(_THIS_WATCH, _WATCH.c.flagged_at.is_(None))
    .values(
        flagged_at=bindparam("at"), account=bindparam("account"), top_hits=bindparam("top"), reason=bindparam("why")
    )
)

#: On PostgreSQL the count is this one statement in autocommit, where the transaction below takes seven round
#: trips (BEGIN, the pool's ping, the durability, three statements, COMMIT) on most Beacon answers (rare alleles
#: are most alleles). The hits are counted only while the person is not flagged, as below.
_COUNT_POSTGRESQL = text(
    """
    WITH counted AS (
        INSERT INTO privacy_watch (principal, dataset_id, rare_questions) VALUES (:p, :d, 1)
        ON CONFLICT (principal, dataset_id) DO UPDATE SET rare_questions = privacy_watch.rare_questions + 1
        RETURNING rare_questions, flagged_at
    ), hit AS (
        INSERT INTO privacy_watch_hits (principal, dataset_id, member, hits)
        SELECT :p, :d, m.member, 1 FROM unnest(CAST(:members AS integer[])) AS m(member)
        WHERE (SELECT flagged_at FROM counted) IS NULL
        ON CONFLICT (principal, dataset_id, member) DO UPDATE SET hits = privacy_watch_hits.hits + 1
        RETURNING hits
    )
    SELECT counted.rare_questions, counted.flagged_at, (SELECT max(hits) FROM hit),
        set_config('synchronous_commit', :synchronous_commit, true)
    FROM counted
    """
)


class SqlAttackWatch:
    """The rule's counts in the metadata database; a new flag is written to the audit log.

    Only questions on rare alleles are counted (a few statements each, in a transaction of their own, after
    the answer's own); common alleles, which are most questions, cost nothing here.
    """

    def __init__(self, database: Database, audit: AuditLog | None, *, wait_for_disk: bool = False) -> None:
        self.database = database
        self.audit = audit
        #: ``DatabaseSettings.privacy_writes_wait_for_disk``, as for the answer's own write.
        self.wait_for_disk = wait_for_disk
        postgresql = database.engine.dialect.name == "postgresql"
        self._autocommit = database.engine.execution_options(isolation_level="AUTOCOMMIT") if postgresql else None

    def observe(
        self, rule: WatchRule, principal: str, account: str, dataset_id: str, carriers: Iterable[int], allele_count: int
    ) -> Flag | None:
        """Count one question; the flag when this question raised it (once per person and dataset)."""
        if not rule.rare(allele_count):
            return None
        members = list(carriers)
        try:
            flag = self._count(rule, principal, account, dataset_id, members)
        except IntegrityError:  # a concurrent first question of the same person created a row first
            flag = self._count(rule, principal, account, dataset_id, members)
        if flag is not None and self.audit is not None:
            self.audit.record(
                Entry(
                    actor=principal,
                    action=FLAG_ACTION,
                    resource=f"datasets/{dataset_id}",
                    decision="flag",
                    reason=flag.reason,
                    details={"account": account, "top_hits": flag.top_hits, "rare_questions": flag.rare_questions},
                )
            )
        return flag

    def _count(self, rule: WatchRule, principal: str, account: str, dataset_id: str, members: list[int]) -> Flag | None:
        ids = {"p": principal, "d": dataset_id}
        if self._autocommit is not None:
            return self._count_postgresql(rule, principal, account, dataset_id, members)
        with self.database.engine.begin() as connection:
            if not self.wait_for_disk:
                commit_without_waiting(connection)
            row = connection.execute(_COUNT, ids).one_or_none()
            if row is None:
                connection.execute(
                    insert(_WATCH), {"principal": principal, "dataset_id": dataset_id, "rare_questions": 1}
                )
                rare, flagged_at = 1, None
            else:
                rare, flagged_at = int(row[0]), row[1]
            if flagged_at is not None or not members:
                return None
            hits: dict[int, int] = {int(m): int(h) for m, h in connection.execute(_HIT, {**ids, "members": members})}
            fresh = [m for m in members if m not in hits]
            if fresh:
                connection.execute(
                    insert(_HITS),
                    [{"principal": principal, "dataset_id": dataset_id, "member": m, "hits": 1} for m in fresh],
                )
                hits.update(dict.fromkeys(fresh, 1))
            top = max(hits.values())
            if not rule.trips(top, rare):
                return None
            why = rule.reason(top, rare)
            at = datetime.now(UTC)
            params = {**ids, "at": at, "account": account, "top": top, "why": why}
            if connection.execute(_FLAG, params).rowcount != 1:
                return None  # another worker raised it first
        return Flag(principal, account, dataset_id, top, rare, why)

    def _count_postgresql(
        self, rule: WatchRule, principal: str, account: str, dataset_id: str, members: list[int]
    ) -> Flag | None:
        assert self._autocommit is not None
        ids = {"p": principal, "d": dataset_id}
        durability = "on" if self.wait_for_disk else "off"
        with self._autocommit.connect() as connection:
            counting = {**ids, "members": members, "synchronous_commit": durability}
            rare, flagged_at, top, _ = connection.execute(_COUNT_POSTGRESQL, counting).one()
            if flagged_at is not None or top is None or not rule.trips(top, rare):
                return None
            why = rule.reason(top, rare)
            flagging = {**ids, "at": datetime.now(UTC), "account": account, "top": top, "why": why}
            if connection.execute(_FLAG, flagging).rowcount != 1:
                return None  # another worker raised it first
        return Flag(principal, account, dataset_id, top, rare, why)
