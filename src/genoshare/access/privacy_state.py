"""Where the Beacon privacy defences keep their state: budgets spent, answers given, links, rate counters.

``PrivacyGuard`` (``genoshare.access.privacy``) talks to a ``PrivacyState``; the node uses ``SqlPrivacyState``
on its metadata database (SQLite or PostgreSQL) so that budgets and cached answers survive restarts and are
shared by every worker process. ``MemoryPrivacyState`` holds the same state in dicts: the attack harness
runs hundreds of thousands of guarded answers through it, and a test checks that both give the same answers.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol

from pyroaring import BitMap, FrozenBitMap
from sqlalchemy import BindParameter, Connection, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genoshare.store.db import Database
from genoshare.store.privacy_tables import PrivacyAnswer, PrivacyLink, PrivacySession, PrivacySpend

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

    @property
    def randomised(self) -> bool:
        """Whether the policy randomised this answer (whatever the coin said: that is never told)."""
        return self.allele_count is None and not self.withheld


class SessionState(Protocol):
    """One principal's state on one dataset, inside one unit of work."""

    def tick(self, now: float, per_minute: int | None, per_day: int | None) -> float | None:
        """Count one request; if a limit is reached, count nothing and return the seconds to wait."""

    def cached(self, key: str) -> Answer | None: ...

    def remember(self, key: str, answer: Answer) -> None: ...

    def exhausted(self, budget: float) -> FrozenBitMap:
        """Members whose spent budget has reached ``budget``: frozen, since it is the cached set itself."""

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


class Spends:
    """Budget spent per member, with the members at or over each budget asked about kept ready.

    Every guarded answer asks who is exhausted; scanning every member ever spent on made that grow with
    the session (0.16 ms after a thousand questions). Spends only grow, so a member once over a budget
    stays over it, and the sets are updated as spends are added.
    """

    def __init__(self, spent: dict[int, float] | None = None) -> None:
        self._spent = spent if spent is not None else {}
        self._exhausted: dict[float, FrozenBitMap] = {}

    def items(self) -> Iterator[tuple[int, float]]:
        return iter(self._spent.items())

    def exhausted(self, budget: float) -> FrozenBitMap:
        members = self._exhausted.get(budget)
        if members is None:
            members = self._exhausted[budget] = FrozenBitMap(m for m, spent in self._spent.items() if spent >= budget)
        return members

    def of(self, members: BitMap) -> dict[int, float]:
        return {member: self._spent[member] for member in members if member in self._spent}

    def add(self, members: Iterable[int], amount: float) -> None:
        totals: dict[int, float] = {}
        for member in members:
            totals[member] = self._spent[member] = self._spent.get(member, 0.0) + amount
        for budget, over in self._exhausted.items():
            crossed = [member for member, total in totals.items() if total >= budget and member not in over]
            if crossed:
                self._exhausted[budget] = over | FrozenBitMap(crossed)


# --- in memory ---------------------------------------------------------------------------------------------


@dataclass
class _MemorySession:
    counters: list[int]
    answers: dict[str, Answer]
    spends: Spends

    def tick(self, now: float, per_minute: int | None, per_day: int | None) -> float | None:
        wait, self.counters = _window_tick(now, per_minute, per_day, self.counters)
        return wait

    def cached(self, key: str) -> Answer | None:
        return self.answers.get(key)

    def remember(self, key: str, answer: Answer) -> None:
        self.answers[key] = answer

    def exhausted(self, budget: float) -> FrozenBitMap:
        return self.spends.exhausted(budget)

    def spent(self, members: BitMap) -> dict[int, float]:
        return self.spends.of(members)

    def spend(self, members: BitMap, amount: float) -> None:
        self.spends.add(members, amount)


class MemoryPrivacyState:
    """Process-local state for the attack harness; lost on exit, so never the node's store."""

    def __init__(self) -> None:
        self._sessions: dict[tuple[str, str], _MemorySession] = {}
        self._links: dict[str, str] = {}

    @contextmanager
    def session(self, principal: str, dataset_id: str) -> Iterator[SessionState]:
        yield self._sessions.setdefault((principal, dataset_id), _MemorySession([0, 0, 0, 0], {}, Spends()))

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
            target = self._sessions.setdefault((keep, dataset_id), _MemorySession([0, 0, 0, 0], {}, Spends()))
            for member, spent in moved.spends.items():
                target.spends.add([member], spent)
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


_SESSIONS = PrivacySession.__table__
_SPENDS = PrivacySpend.__table__
_ANSWERS = PrivacyAnswer.__table__
_THIS_SESSION = (_SESSIONS.c.principal == bindparam("p")) & (_SESSIONS.c.dataset_id == bindparam("d"))
_THIS_SPENDS = (_SPENDS.c.principal == bindparam("p")) & (_SPENDS.c.dataset_id == bindparam("d"))
_COUNTERS: dict[str, BindParameter[int]] = {
    "minute_window": bindparam("mw"),
    "minute_count": bindparam("mc"),
    "day_window": bindparam("dw"),
    "day_count": bindparam("dc"),
}
# Statements built once: a guarded answer runs two or three of them, and building them is most of their cost.
#: Lock the row if it is exactly as this process last wrote it (compare-and-set on requests and stamp).
_LOCK_IF_UNCHANGED = (
    update(_SESSIONS)
    .where(_THIS_SESSION, _SESSIONS.c.requests == bindparam("seen"), _SESSIONS.c.updated_at == bindparam("seen_at"))
    .values(requests=_SESSIONS.c.requests + 1, updated_at=bindparam("at"))
)
_LOCK_IF_UNCHANGED_COUNTING = _LOCK_IF_UNCHANGED.values(**_COUNTERS)
#: Lock the row whatever its state, and read it.
_LOCK = (
    update(_SESSIONS)
    .where(_THIS_SESSION)
    .values(requests=_SESSIONS.c.requests + 1, updated_at=bindparam("at"))
    .returning(
        _SESSIONS.c.requests,
        _SESSIONS.c.minute_window,
        _SESSIONS.c.minute_count,
        _SESSIONS.c.day_window,
        _SESSIONS.c.day_count,
    )
)
# Every write sets the stamp: left out, the column's onupdate would stamp the row as someone else's change.
_SET_COUNTERS = update(_SESSIONS).where(_THIS_SESSION).values(updated_at=bindparam("at"), **_COUNTERS)
_NEW_SESSION = insert(_SESSIONS)
_READ_SPENDS = select(_SPENDS.c.member, _SPENDS.c.spent).where(_THIS_SPENDS)
_READ_ANSWERS = select(
    _ANSWERS.c.key_hash, _ANSWERS.c.exists, _ANSWERS.c.allele_count, _ANSWERS.c.carrier_count, _ANSWERS.c.reason
).where((_ANSWERS.c.principal == bindparam("p")) & (_ANSWERS.c.dataset_id == bindparam("d")))
_ADD_SPEND = (
    update(_SPENDS)
    .where(_THIS_SPENDS, _SPENDS.c.member.in_(bindparam("members", expanding=True)))
    .values(spent=_SPENDS.c.spent + bindparam("amount"))
)
_NEW_SPEND = insert(_SPENDS)
_NEW_ANSWER = insert(_ANSWERS)


@dataclass
class _Known:
    """One principal's state on one dataset as this process last committed it.

    ``requests`` and ``stamp`` are the row's values after that commit: while the row still holds them,
    nobody else (another process, a steward's link) has changed anything, and this copy is the truth.
    """

    requests: int
    stamp: datetime
    counters: list[int]
    answers: dict[str, Answer]
    spends: Spends


class _SqlSession:
    """A unit of work over the cached state: reads from memory, writes through to the database.

    The principal's row is locked by the first call (normally ``tick``), in one statement that also
    checks the cache is current and stores the new counters; the rest is an INSERT per new answer and
    two statements when budget is spent, all committed together when the unit of work ends.
    """

    def __init__(self, state: SqlPrivacyState, connection: Connection, principal: str, dataset_id: str) -> None:
        self._state = state
        self._connection = connection
        self._key = (principal, dataset_id)
        self._ids = {"p": principal, "d": dataset_id}
        self._known: _Known | None = None
        self._stamp = _fresh_stamp()
        #: The cached copy as it was before this unit of work, while only its counters have changed.
        self._before: tuple[int, datetime, list[int]] | None = None

    def _locked(self, counters: Callable[[list[int]], list[int]] | None = None) -> _Known:
        """Lock the row and return the current state, applying ``counters`` to the counters in the same write."""
        if self._known is not None:
            if counters is not None:
                self._known.counters = counters(self._known.counters)
                self._write_counters(self._known.counters)
            return self._known
        known = self._state._cached(self._key)
        if known is not None:
            params = {**self._ids, "seen": known.requests, "seen_at": known.stamp, "at": self._stamp}
            statement = _LOCK_IF_UNCHANGED
            if counters is not None:
                fresh = counters(known.counters)
                params.update(_counter_params(fresh))
                statement = _LOCK_IF_UNCHANGED_COUNTING
            if self._connection.execute(statement, params).rowcount == 1:
                self._before = (known.requests, known.stamp, known.counters)
                if counters is not None:
                    known.counters = fresh
                known.requests += 1
                known.stamp = self._stamp
                self._known = known
                return known
        self._known = self._load()
        if counters is not None:
            self._known.counters = counters(self._known.counters)
            self._write_counters(self._known.counters)
        return self._known

    def _load(self) -> _Known:
        """The row locked and everything of this principal on this dataset read (a first use, or a change)."""
        row = self._connection.execute(_LOCK, {**self._ids, "at": self._stamp}).one_or_none()
        if row is None:
            try:
                with self._connection.begin_nested():
                    self._connection.execute(
                        _NEW_SESSION,
                        {
                            "principal": self._key[0], "dataset_id": self._key[1], "requests": 0,
                            "minute_window": 0, "minute_count": 0, "day_window": 0, "day_count": 0,
                            "updated_at": self._stamp,
                        },
                    )  # fmt: skip
            except IntegrityError:
                pass  # another request created it first; the lock below now finds it
            row = self._connection.execute(_LOCK, {**self._ids, "at": self._stamp}).one()
        spends = Spends({member: spent for member, spent in self._connection.execute(_READ_SPENDS, self._ids)})
        answers = {
            digest: Answer(exists, allele_count, carrier_count, reason, cached=True)
            for digest, exists, allele_count, carrier_count, reason in self._connection.execute(
                _READ_ANSWERS, self._ids
            )
        }
        return _Known(int(row[0]), self._stamp, [int(v) for v in row[1:]], answers, spends)

    def rolled_back(self) -> bool:
        """Undo this unit of work in memory; False if the copy must be read again instead.

        A rate-limited request changes nothing but the counters it is refused on, so the copy stays
        usable: a client hammering a limit must not make every refusal re-read its whole state.
        """
        if self._known is None:
            return True
        if self._before is None:
            return False
        self._known.requests, self._known.stamp, self._known.counters = self._before
        return True

    def _write_counters(self, counters: list[int]) -> None:
        self._connection.execute(_SET_COUNTERS, {**self._ids, "at": self._stamp, **_counter_params(counters)})

    def tick(self, now: float, per_minute: int | None, per_day: int | None) -> float | None:
        waits: list[float | None] = []

        def counted(counters: list[int]) -> list[int]:
            wait, after = _window_tick(now, per_minute, per_day, counters)
            waits.append(wait)
            return after

        self._locked(counted)
        return waits[-1]

    def cached(self, key: str) -> Answer | None:
        return self._locked().answers.get(key_hash(key))

    def remember(self, key: str, answer: Answer) -> None:
        digest = key_hash(key)
        known = self._locked()
        self._connection.execute(
            _NEW_ANSWER,
            {
                "principal": self._key[0], "dataset_id": self._key[1], "key_hash": digest, "exists": answer.exists,
                "allele_count": answer.allele_count, "carrier_count": answer.carrier_count, "reason": answer.reason,
                "created_at": datetime.now(UTC),
            },
        )  # fmt: skip
        self._before = None
        known.answers[digest] = replace(answer, cached=True)

    def exhausted(self, budget: float) -> FrozenBitMap:
        return self._locked().spends.exhausted(budget)

    def spent(self, members: BitMap) -> dict[int, float]:
        return self._locked().spends.of(members)

    def spend(self, members: BitMap, amount: float) -> None:
        spends = self._locked().spends
        self._before = None
        known = spends.of(members)
        if known:
            self._connection.execute(_ADD_SPEND, {**self._ids, "members": list(known), "amount": amount})
        fresh = [member for member in members if member not in known]
        if fresh:
            self._connection.execute(
                _NEW_SPEND,
                [{"principal": self._key[0], "dataset_id": self._key[1], "member": m, "spent": amount} for m in fresh],
            )
        spends.add(members, amount)


def _counter_params(counters: list[int]) -> dict[str, int]:
    return dict(zip(("mw", "mc", "dw", "dc"), counters, strict=True))


def _fresh_stamp() -> datetime:
    """A write's stamp: the time, to the microsecond the databases keep, so another writer's differs."""
    return datetime.now(UTC)


class SqlPrivacyState:
    """Privacy state in the node's metadata database, served from memory.

    The database is the store of record: every answer's changes are written (and committed) before the
    answer leaves, so budgets and cached answers survive restarts and are seen by other processes. Reads
    come from a copy in memory, which an answer may use only after locking the principal's row with a
    compare-and-set on the request counter and the stamp of this process's last write; if another writer
    (another server process, ``genoshare privacy link``) changed the row since, the copy is read again.
    A guarded answer thus costs one locking UPDATE and an INSERT, instead of reading spends and answers.
    """

    #: (principal, dataset) pairs kept in memory; the least recently used is read again when needed.
    CACHE_SIZE = 4096

    def __init__(self, database: Database) -> None:
        self.database = database
        self._known: OrderedDict[tuple[str, str], _Known] = OrderedDict()
        self._guard = threading.Lock()
        # Concurrent answers for one principal in this process take turns here before the database lock.
        self._locks = [threading.Lock() for _ in range(64)]

    def _cached(self, key: tuple[str, str]) -> _Known | None:
        with self._guard:
            known = self._known.get(key)
            if known is not None:
                self._known.move_to_end(key)
            return known

    def _keep(self, key: tuple[str, str], known: _Known) -> None:
        with self._guard:
            self._known[key] = known
            self._known.move_to_end(key)
            while len(self._known) > self.CACHE_SIZE:
                self._known.popitem(last=False)

    def _forget(self, *principals: str) -> None:
        with self._guard:
            for key in [key for key in self._known if key[0] in principals]:
                del self._known[key]

    @contextmanager
    def session(self, principal: str, dataset_id: str) -> Iterator[SessionState]:
        key = (principal, dataset_id)
        with self._locks[hash(key) % len(self._locks)]:
            session: _SqlSession | None = None
            try:
                with self.database.engine.begin() as connection:
                    session = _SqlSession(self, connection, principal, dataset_id)
                    yield session
                    session._locked()  # a unit of work that asked nothing still counts as a request
            except BaseException:
                # Rolled back: what was changed in memory never happened; undo it or read it again next time.
                if session is None or not session.rolled_back():
                    with self._guard:
                        self._known.pop(key, None)
                raise
            if session._known is not None:
                self._keep(key, session._known)

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
        # Other processes see the merge by the changed rows; this one need not wait for the check.
        self._forget(keep, gone)
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
