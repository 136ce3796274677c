"""Where the Beacon privacy defences keep their state: budgets spent, answers given, links, rate counters.

``PrivacyGuard`` (``genoshare.access.privacy``) talks to a ``PrivacyState``; the node uses ``SqlPrivacyState``
on its metadata database (SQLite or PostgreSQL) so that budgets and cached answers survive restarts and are
shared by every worker process. ``MemoryPrivacyState`` holds the same state in dicts: the attack harness
runs hundreds of thousands of guarded answers through it, and a test checks that both give the same answers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Protocol

from pyroaring import BitMap
from sqlalchemy import Select, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genoshare.access.privacy_tables import PrivacyAnswer, PrivacyLink, PrivacySession, PrivacySpend
from genoshare.store.db import Database

MINUTE = 60
DAY = 86_400


@dataclass(frozen=True)
class Answer:
    """What the Beacon may say about one allele in one dataset to one caller.

    ``exists`` is the only field a boolean answer uses. The counts are those of the members the caller may
    still learn about (after budget exclusions); ``None`` when the answer may have been randomised, since a
    count next to a flipped bit would give the flip away. ``withheld`` means no allele-level answer at all
    (the Beacon reports the dataset as not answering); ``cached`` marks a repeat served from the cache.
    """

    exists: bool
    allele_count: int | None
    carrier_count: int | None
    reason: str
    withheld: bool = False
    cached: bool = False


class SessionState(Protocol):
    """One principal's state on one dataset, inside one unit of work."""

    def tick(self, now: float, per_minute: int | None, per_day: int | None) -> float | None:
        """Count one request; if a limit is reached, count nothing and return the seconds to wait."""

    def cached(self, key: str) -> Answer | None: ...

    def remember(self, key: str, answer: Answer) -> None: ...

    def exhausted(self, budget: float) -> BitMap:
        """Members whose spent budget has reached ``budget``."""

    def spent(self, members: BitMap) -> dict[int, float]:
        """Budget spent so far on each of ``members`` (absent means nothing)."""

    def spend(self, members: BitMap, amount: float) -> None: ...


class PrivacyState(Protocol):
    def session(self, principal: str, dataset_id: str) -> AbstractContextManager[SessionState]:
        """A unit of work that holds the principal's lock on the dataset until it ends."""

    def principal_of(self, account: str) -> str | None:
        """The principal an account was linked to, or None if it was never linked."""

    def link(self, account: str, other: str, by: str) -> str:
        """Make two accounts one person: merge their budgets, answers and counters; return the principal."""


def _window_tick(
    now: float, per_minute: int | None, per_day: int | None, counters: list[int]
) -> tuple[float | None, list[int]]:
    """Fixed-window rate limiting over ``[minute_window, minute_count, day_window, day_count]``."""
    minute, day = int(now // MINUTE), int(now // DAY)
    minute_count = counters[1] if counters[0] == minute else 0
    day_count = counters[3] if counters[2] == day else 0
    if per_minute is not None and minute_count >= per_minute:
        return (minute + 1) * MINUTE - now, counters
    if per_day is not None and day_count >= per_day:
        return (day + 1) * DAY - now, counters
    return None, [minute, minute_count + 1, day, day_count + 1]


# --- in memory ---------------------------------------------------------------------------------------------


@dataclass
class _MemorySession:
    counters: list[int]
    answers: dict[str, Answer]
    spends: dict[int, float]

    def tick(self, now: float, per_minute: int | None, per_day: int | None) -> float | None:
        wait, self.counters = _window_tick(now, per_minute, per_day, self.counters)
        return wait

    def cached(self, key: str) -> Answer | None:
        return self.answers.get(key)

    def remember(self, key: str, answer: Answer) -> None:
        self.answers[key] = answer

    def exhausted(self, budget: float) -> BitMap:
        return BitMap(member for member, spent in self.spends.items() if spent >= budget)

    def spent(self, members: BitMap) -> dict[int, float]:
        return {member: self.spends[member] for member in members if member in self.spends}

    def spend(self, members: BitMap, amount: float) -> None:
        for member in members:
            self.spends[member] = self.spends.get(member, 0.0) + amount


class MemoryPrivacyState:
    """Process-local state for the attack harness; lost on exit, so never the node's store."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], _MemorySession] = {}
        self._links: dict[str, str] = {}

    @contextmanager
    def session(self, principal: str, dataset_id: str) -> Iterator[SessionState]:
        yield self._sessions.setdefault((principal, dataset_id), _MemorySession([0, 0, 0, 0], {}, {}))

    def principal_of(self, account: str) -> str | None:
        return self._links.get(account)

    def link(self, account: str, other: str, by: str) -> str:
        keep = self._links.get(account, account)
        gone = self._links.get(other, other)
        self._links.setdefault(account, keep)
        self._links[other] = keep
        if keep == gone:
            return keep
        for name, principal in self._links.items():
            if principal == gone:
                self._links[name] = keep
        for (principal, dataset_id), moved in list(self._sessions.items()):
            if principal != gone:
                continue
            del self._sessions[(principal, dataset_id)]
            target = self._sessions.setdefault((keep, dataset_id), _MemorySession([0, 0, 0, 0], {}, {}))
            for member, spent in moved.spends.items():
                target.spends[member] = target.spends.get(member, 0.0) + spent
            for key, answer in moved.answers.items():
                target.answers.setdefault(key, answer)
            target.counters = _merged_counters(target.counters, moved.counters)
        return keep


def _merged_counters(kept: list[int], moved: list[int]) -> list[int]:
    """Two people's counters as one: counts in the same window add up, so linking never resets a limit."""
    minute = max(kept[0], moved[0])
    day = max(kept[2], moved[2])
    minute_count = sum(c[1] for c in (kept, moved) if c[0] == minute)
    day_count = sum(c[3] for c in (kept, moved) if c[2] == day)
    return [minute, minute_count, day, day_count]


# --- in the metadata database ------------------------------------------------------------------------------


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class _SqlSession:
    def __init__(self, session: Session, row: PrivacySession) -> None:
        self._session = session
        self._row = row
        self._principal = row.principal
        self._dataset_id = row.dataset_id

    def tick(self, now: float, per_minute: int | None, per_day: int | None) -> float | None:
        row = self._row
        counters = [row.minute_window, row.minute_count, row.day_window, row.day_count]
        wait, counters = _window_tick(now, per_minute, per_day, counters)
        row.minute_window, row.minute_count, row.day_window, row.day_count = counters
        return wait

    def cached(self, key: str) -> Answer | None:
        row = self._session.get(PrivacyAnswer, (self._principal, self._dataset_id, key_hash(key)))
        if row is None:
            return None
        return Answer(row.exists, row.allele_count, row.carrier_count, row.reason, cached=True)

    def remember(self, key: str, answer: Answer) -> None:
        self._session.add(
            PrivacyAnswer(
                principal=self._principal,
                dataset_id=self._dataset_id,
                key_hash=key_hash(key),
                exists=answer.exists,
                allele_count=answer.allele_count,
                carrier_count=answer.carrier_count,
                reason=answer.reason,
            )
        )

    def _spends(self) -> Select[tuple[int, float]]:
        return select(PrivacySpend.member, PrivacySpend.spent).where(
            PrivacySpend.principal == self._principal, PrivacySpend.dataset_id == self._dataset_id
        )

    def exhausted(self, budget: float) -> BitMap:
        rows = self._session.execute(self._spends().where(PrivacySpend.spent >= budget))
        return BitMap(member for member, _ in rows)

    def spent(self, members: BitMap) -> dict[int, float]:
        rows = self._session.execute(self._spends().where(PrivacySpend.member.in_(list(members))))
        return {member: spent for member, spent in rows}

    def spend(self, members: BitMap, amount: float) -> None:
        present = BitMap(self.spent(members))
        if present:
            self._session.execute(
                update(PrivacySpend)
                .where(
                    PrivacySpend.principal == self._principal,
                    PrivacySpend.dataset_id == self._dataset_id,
                    PrivacySpend.member.in_(list(present)),
                )
                .values(spent=PrivacySpend.spent + amount)
            )
        self._session.add_all(
            PrivacySpend(principal=self._principal, dataset_id=self._dataset_id, member=member, spent=amount)
            for member in members - present
        )
        self._session.flush()


class SqlPrivacyState:
    """Privacy state in the node's metadata database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    @staticmethod
    def _locked_row(session: Session, principal: str, dataset_id: str) -> PrivacySession:
        """The principal's counter row, write-locked so concurrent answers for one person run in turn.

        The UPDATE comes first: it takes a row lock on PostgreSQL and the write lock on SQLite.
        """
        bump = (
            update(PrivacySession)
            .where(PrivacySession.principal == principal, PrivacySession.dataset_id == dataset_id)
            .values(requests=PrivacySession.requests + 1)
        )
        if session.execute(bump).rowcount == 0:  # type: ignore[attr-defined]
            try:
                with session.begin_nested():
                    session.add(
                        PrivacySession(
                            principal=principal,
                            dataset_id=dataset_id,
                            requests=0,
                            minute_window=0,
                            minute_count=0,
                            day_window=0,
                            day_count=0,
                        )
                    )
            except IntegrityError:
                pass  # another request created it first; the bump below now finds it
            session.execute(bump)
        row = session.get(PrivacySession, (principal, dataset_id), populate_existing=True)
        assert row is not None
        return row

    @contextmanager
    def session(self, principal: str, dataset_id: str) -> Iterator[SessionState]:
        with self.database.session() as session:
            yield _SqlSession(session, self._locked_row(session, principal, dataset_id))

    def principal_of(self, account: str) -> str | None:
        with self.database.session() as session:
            return session.scalar(select(PrivacyLink.principal).where(PrivacyLink.account == account))

    def link(self, account: str, other: str, by: str) -> str:
        with self.database.session() as session:
            links = {row.account: row for row in session.scalars(select(PrivacyLink).with_for_update())}
            keep = links[account].principal if account in links else account
            gone = links[other].principal if other in links else other
            for name in (account, other):
                if name not in links:
                    links[name] = PrivacyLink(account=name, principal=keep, linked_by=by)
                    session.add(links[name])
            if keep != gone:
                session.execute(update(PrivacyLink).where(PrivacyLink.principal == gone).values(principal=keep))
                session.flush()
                self._merge(session, keep, gone)
            links[other].principal = keep
            return keep

    @staticmethod
    def _merge(session: Session, keep: str, gone: str) -> None:
        """Charge everything ``gone`` has done to ``keep``: spends add up, the kept answers win."""
        for moved in session.scalars(select(PrivacySpend).where(PrivacySpend.principal == gone)).all():
            target = session.get(PrivacySpend, (keep, moved.dataset_id, moved.member))
            if target is None:
                session.add(
                    PrivacySpend(principal=keep, dataset_id=moved.dataset_id, member=moved.member, spent=moved.spent)
                )
            else:
                target.spent += moved.spent
        for answer in session.scalars(select(PrivacyAnswer).where(PrivacyAnswer.principal == gone)).all():
            if session.get(PrivacyAnswer, (keep, answer.dataset_id, answer.key_hash)) is None:
                session.add(
                    PrivacyAnswer(
                        principal=keep,
                        dataset_id=answer.dataset_id,
                        key_hash=answer.key_hash,
                        exists=answer.exists,
                        allele_count=answer.allele_count,
                        carrier_count=answer.carrier_count,
                        reason=answer.reason,
                        created_at=answer.created_at,
                    )
                )
        for moved_row in session.scalars(select(PrivacySession).where(PrivacySession.principal == gone)).all():
            kept_row = session.get(PrivacySession, (keep, moved_row.dataset_id))
            if kept_row is None:
                kept_row = PrivacySession(principal=keep, dataset_id=moved_row.dataset_id, requests=0)
                kept_row.minute_window = kept_row.minute_count = kept_row.day_window = kept_row.day_count = 0
                session.add(kept_row)
            counters = _merged_counters(
                [kept_row.minute_window, kept_row.minute_count, kept_row.day_window, kept_row.day_count],
                [moved_row.minute_window, moved_row.minute_count, moved_row.day_window, moved_row.day_count],
            )
            kept_row.minute_window, kept_row.minute_count, kept_row.day_window, kept_row.day_count = counters
            kept_row.requests += moved_row.requests
        session.flush()
        for table in (PrivacySpend, PrivacyAnswer, PrivacySession):
            session.execute(delete(table).where(table.principal == gone))
