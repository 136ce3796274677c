"""Where the Beacon privacy defences keep their state: budgets spent, answers given, links, rate counters.

``PrivacyGuard`` (``genoshare.access.privacy``) talks to a ``PrivacyState``; the node uses ``SqlPrivacyState``
on its metadata database (SQLite or PostgreSQL) so that budgets and cached answers survive restarts and are
shared by every worker process. ``MemoryPrivacyState`` holds the same state in dicts: the attack harness
runs hundreds of thousands of guarded answers through it, and a test checks that both give the same answers.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from pyroaring import BitMap, FrozenBitMap
from sqlalchemy import BindParameter, Connection, bindparam, delete, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from genoshare.access.attack_watch import (
    COUNT_CTES_POSTGRESQL,
    COUNT_RESULT_POSTGRESQL,
    WatchCounts,
    merge_counts,
    watch_counts,
)
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

    def answered(self, reason: str) -> int:
        """Distinct questions whose cached answer gave ``reason`` (after links, the person's, merged)."""

    def exhausted(self, budget: float) -> FrozenBitMap:
        """Members whose spent budget has reached ``budget``: frozen, since it is the cached set itself."""

    def spent(self, members: BitMap) -> dict[int, float]:
        """Budget spent so far on each of ``members`` (absent means nothing)."""

    def spend(self, members: BitMap, amount: float) -> None: ...

    def watch(self, counting: dict[str, Any]) -> bool:
        """Count this question for the attack watch in the unit of work's own write, if this state can.

        ``counting``: the counting statement's parameters (``attack_watch.counting``).

        False: it cannot, and the watch counts the question itself afterwards.
        """

    def watched(self) -> WatchCounts | None:
        """After the unit of work, what the watch's counting in it returned (``attack_watch.watch_counts``)."""


class PrivacyState(Protocol):
    def session(self, principal: str, dataset_id: str) -> AbstractContextManager[SessionState]:
        """A unit of work on the principal's state on the dataset, applied as a whole when it ends.

        It may raise ``StateChanged`` as it ends: nothing was applied, and the work must be done again.
        """

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

    def answered(self, reason: str) -> int:
        return sum(1 for answer in self.answers.values() if answer.reason == reason)

    def exhausted(self, budget: float) -> FrozenBitMap:
        return self.spends.exhausted(budget)

    def spent(self, members: BitMap) -> dict[int, float]:
        return self.spends.of(members)

    def spend(self, members: BitMap, amount: float) -> None:
        self.spends.add(members, amount)

    def watch(self, counting: dict[str, Any]) -> bool:
        return False

    def watched(self) -> WatchCounts | None:
        return None


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
# Statements built once: building them is most of their cost.
#: Count the request and store the counters if the row is exactly as this process last saw it (compare-and-set
#: on requests and stamp); every write sets the stamp, or the column's onupdate would stamp it as another's.
_COUNT_IF_UNCHANGED = (
    update(_SESSIONS)
    .where(_THIS_SESSION, _SESSIONS.c.requests == bindparam("seen"), _SESSIONS.c.updated_at == bindparam("seen_at"))
    .values(requests=_SESSIONS.c.requests + 1, updated_at=bindparam("at"), **_COUNTERS)
)
#: Lock the row without changing it, and read it.
_LOCK = (
    update(_SESSIONS)
    .where(_THIS_SESSION)
    .values(requests=_SESSIONS.c.requests, updated_at=_SESSIONS.c.updated_at)
    .returning(
        _SESSIONS.c.requests,
        _SESSIONS.c.updated_at,
        _SESSIONS.c.minute_window,
        _SESSIONS.c.minute_count,
        _SESSIONS.c.day_window,
        _SESSIONS.c.day_count,
    )
)
_NEW_SESSION = insert(_SESSIONS)
_READ_SPENDS = select(_SPENDS.c.member, _SPENDS.c.spent).where(_THIS_SPENDS)
_READ_ANSWERS = select(
    _ANSWERS.c.key_hash, _ANSWERS.c.exists, _ANSWERS.c.allele_count, _ANSWERS.c.carrier_count, _ANSWERS.c.reason
).where((_ANSWERS.c.principal == bindparam("p")) & (_ANSWERS.c.dataset_id == bindparam("d")))
_ADD_SPEND = (
    update(_SPENDS)
    .where(_THIS_SPENDS, _SPENDS.c.member == bindparam("m"))
    .values(spent=_SPENDS.c.spent + bindparam("amount"))
)
_NEW_SPEND = insert(_SPENDS)
_LINKS = PrivacyLink.__table__
_PRINCIPAL_OF = select(_LINKS.c.principal).where(_LINKS.c.account == bindparam("a"))
_NEW_ANSWER = insert(_ANSWERS)
#: On PostgreSQL an answer's whole write is this one statement, sent in autocommit: a round trip, where a
#: transaction of UPDATE, spends and answer took seven (BEGIN, the pool's ping, four statements, COMMIT) and
#: made a registered researcher's allele answer 60 % slower than on SQLite. The spends and the answer are
#: written only if the compare-and-set on the session row matched (``WHERE EXISTS``); the row lock it takes
#: makes a concurrent writer's compare-and-set wait, then fail on the changed row. ``synchronous_commit`` is
#: the statement's own (``SqlPrivacyState``'s ``wait_for_disk``).
_WRITE_CTES_POSTGRESQL = """
    counted AS (
        UPDATE privacy_sessions
        SET requests = requests + 1, updated_at = :at,
            minute_window = :mw, minute_count = :mc, day_window = :dw, day_count = :dc
        WHERE principal = :p AND dataset_id = :d AND requests = :seen AND updated_at = :seen_at
        RETURNING 1
    ), spent AS (
        INSERT INTO privacy_spends (principal, dataset_id, member, spent)
        SELECT :p, :d, m.member, m.amount
        FROM unnest(CAST(:members AS integer[]), CAST(:amounts AS double precision[])) AS m(member, amount)
        WHERE EXISTS (SELECT FROM counted)
        ON CONFLICT (principal, dataset_id, member) DO UPDATE SET spent = privacy_spends.spent + excluded.spent
    ), answered AS (
        INSERT INTO privacy_answers
            (principal, dataset_id, key_hash, "exists", allele_count, carrier_count, reason, created_at)
        SELECT :p, :d, a.key_hash, a.yes, a.allele_count, a.carrier_count, a.reason, :now
        FROM json_to_recordset(CAST(:answers AS json))
            AS a(key_hash varchar, yes boolean, allele_count integer, carrier_count integer, reason varchar)
        WHERE EXISTS (SELECT FROM counted)
        ON CONFLICT DO NOTHING
    )
"""
_WRITTEN_POSTGRESQL = "(SELECT count(*) FROM counted), set_config('synchronous_commit', :synchronous_commit, true)"
_WRITE_POSTGRESQL = text(f"WITH {_WRITE_CTES_POSTGRESQL} SELECT {_WRITTEN_POSTGRESQL}")
#: The same with the attack watch's count of a rare allele's question, made only if the answer was written: one
#: round trip where the watch's own statement after it was a second (a third of the answers in the benchmark).
_WRITE_WATCHED_POSTGRESQL = text(
    f"WITH {_WRITE_CTES_POSTGRESQL}, {COUNT_CTES_POSTGRESQL.format(when='EXISTS (SELECT FROM counted)')} "
    f"SELECT {_WRITTEN_POSTGRESQL}, {COUNT_RESULT_POSTGRESQL}"
)


class StateChanged(Exception):
    """Another writer changed a principal's state after this process read it; nothing was written.

    Raised at the end of a ``SqlPrivacyState.session``: the unit of work must be run again (it then reads the
    state afresh under the row's lock, and cannot meet this again).
    """


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
    """A unit of work on a principal's state: decided on the copy in memory, written when it ends.

    What it changes is applied to the copy at once (later reads see it) and kept to be written: the
    counters, the spends per member, the new answers.
    """

    def __init__(self, known: _Known, watches: bool) -> None:
        self.known = known
        #: Whether the write can carry the attack watch's count (PostgreSQL's one statement).
        self._watches = watches
        self._counters_before = list(known.counters)
        self.spends: dict[int, float] = {}
        #: Members with no spend row before this unit of work (SQLite inserts them, updates the others).
        self._fresh: set[int] = set()
        self.answers: dict[str, Answer] = {}
        #: The attack watch's count to make with the write (its parameters), and what it returned.
        self._watching: dict[str, Any] | None = None
        self._watched: WatchCounts | None = None

    def tick(self, now: float, per_minute: int | None, per_day: int | None) -> float | None:
        wait, self.known.counters = _window_tick(now, per_minute, per_day, self.known.counters)
        return wait

    def cached(self, key: str) -> Answer | None:
        return self.known.answers.get(key_hash(key))

    def remember(self, key: str, answer: Answer) -> None:
        digest = key_hash(key)
        self.answers[digest] = answer
        self.known.answers[digest] = replace(answer, cached=True)

    def answered(self, reason: str) -> int:
        return sum(1 for answer in self.known.answers.values() if answer.reason == reason)

    def exhausted(self, budget: float) -> FrozenBitMap:
        return self.known.spends.exhausted(budget)

    def spent(self, members: BitMap) -> dict[int, float]:
        return self.known.spends.of(members)

    def spend(self, members: BitMap, amount: float) -> None:
        had = self.known.spends.of(members)
        for member in members:
            if member not in had:
                self._fresh.add(member)
            self.spends[member] = self.spends.get(member, 0.0) + amount
        self.known.spends.add(members, amount)

    def watch(self, counting: dict[str, Any]) -> bool:
        if self._watches:
            self._watching = counting
        return self._watches

    def watched(self) -> WatchCounts | None:
        return self._watched

    def undone(self) -> bool:
        """Undo this unit of work on the copy; False if the copy must be read again instead.

        A rate-limited request changes nothing but the counters it is refused on, so the copy stays
        usable: a client hammering a limit must not make every refusal re-read its whole state.
        """
        if self.spends or self.answers:
            return False
        self.known.counters = self._counters_before
        return True

    def write(self, connection: Connection, ids: dict[str, str], wait_for_disk: bool) -> bool:
        """Write the unit of work if the row is as the copy says; False (nothing written) if it is not."""
        stamp = _fresh_stamp()
        params: dict[str, object] = {**ids, "seen": self.known.requests, "seen_at": self.known.stamp, "at": stamp}
        params.update(_counter_params(self.known.counters))
        if connection.dialect.name == "postgresql":
            # The spends go as array literals and the answers as JSON, each one string: psycopg adapts a list
            # value by value, which took more of the answer's time than the database's work on it (about 70 us
            # for 40 carriers, 400 for 400). ``repr`` writes each float in the digits that read back as it.
            answers = [
                {"key_hash": digest, "yes": a.exists, "allele_count": a.allele_count,
                 "carrier_count": a.carrier_count, "reason": a.reason}
                for digest, a in self.answers.items()
            ]  # fmt: skip
            params.update(
                members="{" + ",".join(map(str, self.spends)) + "}",
                amounts="{" + ",".join(map(repr, self.spends.values())) + "}",
                answers=json.dumps(answers), now=datetime.now(UTC),
                synchronous_commit="on" if wait_for_disk else "off",
            )  # fmt: skip
            if self._watching is None:
                row = connection.execute(_WRITE_POSTGRESQL, params).one()
            else:
                params.update(self._watching)
                row = connection.execute(_WRITE_WATCHED_POSTGRESQL, params).one()
                self._watched = watch_counts(row[2:])
            if row[0] != 1:
                return False
        else:
            # SQLite is in this process: statements cost no round trip, and its write lock serialises writers.
            if connection.execute(_COUNT_IF_UNCHANGED, params).rowcount != 1:
                return False
            self._write_rows(connection, ids)
        self.known.requests += 1
        self.known.stamp = stamp
        return True

    def _write_rows(self, connection: Connection, ids: dict[str, str]) -> None:
        added = [{**ids, "m": m, "amount": amount} for m, amount in self.spends.items() if m not in self._fresh]
        if added:
            connection.execute(_ADD_SPEND, added)
        fresh = [
            {"principal": ids["p"], "dataset_id": ids["d"], "member": m, "spent": self.spends[m]} for m in self._fresh
        ]
        if fresh:
            connection.execute(_NEW_SPEND, fresh)
        if self.answers:
            now = datetime.now(UTC)
            rows = [_answer_row(ids, digest, answer, now) for digest, answer in self.answers.items()]
            connection.execute(_NEW_ANSWER, rows)


def _answer_row(ids: dict[str, str], digest: str, answer: Answer, now: datetime) -> dict[str, object]:
    return {
        "principal": ids["p"], "dataset_id": ids["d"], "key_hash": digest, "exists": answer.exists,
        "allele_count": answer.allele_count, "carrier_count": answer.carrier_count, "reason": answer.reason,
        "created_at": now,
    }  # fmt: skip


def _counter_params(counters: list[int]) -> dict[str, int]:
    return dict(zip(("mw", "mc", "dw", "dc"), counters, strict=True))


def _fresh_stamp() -> datetime:
    """A write's stamp: the time, to the microsecond the databases keep, so another writer's differs."""
    return datetime.now(UTC)


class SqlPrivacyState:
    """Privacy state in the node's metadata database, served from memory.

    The database is the store of record: every answer's changes are written (and committed) before the
    answer leaves, so budgets and cached answers survive restarts and are seen by other processes. An
    answer is decided on a copy in memory and written in one compare-and-set on the principal's row (the
    request counter and the stamp of this process's last write) with the spends and answer it adds: one
    statement on PostgreSQL. If another writer (another server process, ``genoshare privacy link``, a
    dataset's re-derivation) changed the row since, nothing is written and the answer is decided again on
    the state read afresh under the row's lock (``StateChanged``).

    ``wait_for_disk=False`` (the node's default, ``database.privacy_writes_wait_for_disk``) commits those
    writes on PostgreSQL without waiting for the WAL to reach the disk (``synchronous_commit = off``): the
    durability SQLite in WAL mode with ``synchronous=NORMAL`` gives every write of a node on SQLite. Other
    processes see the write at once, as always; a crash of the database server (not of a node) may lose the
    last few hundred milliseconds of spends, and never corrupts anything. Waiting costs a disk flush per answer
    (1-6 ms on the development machine, more than everything else the answer does).
    """

    #: (principal, dataset) pairs kept in memory; the least recently used is read again when needed.
    CACHE_SIZE = 4096

    def __init__(self, database: Database, *, wait_for_disk: bool = False) -> None:
        self.database = database
        self.wait_for_disk = wait_for_disk
        # On PostgreSQL the one statement that writes an answer is its own transaction, with no BEGIN or COMMIT;
        # SQLite's write is several statements, in a transaction (its write lock taken by the first).
        self._postgresql = database.engine.dialect.name == "postgresql"
        self._writes = database.engine.execution_options(isolation_level="AUTOCOMMIT") if self._postgresql else None
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

    def _drop(self, key: tuple[str, str]) -> None:
        with self._guard:
            self._known.pop(key, None)

    @contextmanager
    def session(self, principal: str, dataset_id: str) -> Iterator[SessionState]:
        """A unit of work; raises ``StateChanged`` at its end if the copy it was decided on was stale."""
        key = (principal, dataset_id)
        ids = {"p": principal, "d": dataset_id}
        with self._locks[hash(key) % len(self._locks)]:
            known = self._cached(key)
            if known is not None:
                work = _SqlSession(known, self._postgresql)
                try:
                    yield work
                except BaseException:
                    if not work.undone():
                        self._drop(key)
                    raise
                try:
                    with self._write_connection() as connection:
                        written = work.write(connection, ids, self.wait_for_disk)
                    if not written:
                        raise StateChanged(f"privacy state of {principal} on {dataset_id} changed elsewhere")
                except BaseException:
                    self._drop(key)
                    raise
                return
            try:
                with self.database.engine.begin() as connection:
                    work = _SqlSession(self._load(connection, ids), self._postgresql)
                    yield work
                    # The row is locked: nobody else can have changed it since it was read.
                    if not work.write(connection, ids, self.wait_for_disk):
                        raise RuntimeError(f"privacy state of {principal} on {dataset_id} changed under its lock")
            except BaseException:
                self._drop(key)
                raise
            self._keep(key, work.known)

    def _write_connection(self) -> AbstractContextManager[Connection]:
        return self._writes.connect() if self._writes is not None else self.database.engine.begin()

    @staticmethod
    def _load(connection: Connection, ids: dict[str, str]) -> _Known:
        """The row locked (made on first use) and everything of this principal on this dataset read."""
        row = connection.execute(_LOCK, ids).one_or_none()
        if row is None:
            try:
                with connection.begin_nested():
                    connection.execute(
                        _NEW_SESSION,
                        {
                            "principal": ids["p"], "dataset_id": ids["d"], "requests": 0,
                            "minute_window": 0, "minute_count": 0, "day_window": 0, "day_count": 0,
                            "updated_at": _fresh_stamp(),
                        },
                    )  # fmt: skip
            except IntegrityError:
                pass  # another request created it first; the lock below now finds it
            row = connection.execute(_LOCK, ids).one()
        spends = Spends({member: spent for member, spent in connection.execute(_READ_SPENDS, ids)})
        answers = {
            digest: Answer(exists, allele_count, carrier_count, reason, cached=True)
            for digest, exists, allele_count, carrier_count, reason in connection.execute(_READ_ANSWERS, ids)
        }
        return _Known(int(row[0]), row[1], [int(v) for v in row[2:]], answers, spends)

    def principal_of(self, account: str) -> str | None:
        # Read on every guarded answer whose caller is not remembered: one Core statement on a pooled
        # connection (in autocommit on PostgreSQL), where an ORM session cost several times the query.
        with (self._writes or self.database.engine).connect() as connection:
            principal: str | None = connection.execute(_PRINCIPAL_OF, {"a": account}).scalar_one_or_none()
            return principal

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
        """Charge everything ``gone`` has done to ``keep``: spends add up, the kept answers win.

        The attack watch's counts add up too (``attack_watch.merge_counts``): a walk split over identities
        is one walk once they are linked.
        """
        merge_counts(session, keep, gone)
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
