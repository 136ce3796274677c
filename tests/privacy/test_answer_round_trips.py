"""What a Beacon answer asks of the metadata database once the caller's privacy state is known (issue 19).

Latency depends on the machine's load; the statements an answer sends, and on PostgreSQL the round trips
they take, do not. An answer's privacy decision, budget spend and remembered answer are one write: one
statement, and on PostgreSQL one round trip (no pool ping, no BEGIN, no COMMIT), with the attack watch's
count of a question on a rare allele in the same statement. Counted in this process through SQLAlchemy's
hooks (``genoshare_lab.roundtrips``), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest
from pyroaring import BitMap

from genoshare.access.attack_watch import SqlAttackWatch
from genoshare.access.granularity import Granularity
from genoshare.access.passports import Identity
from genoshare.access.policy import Decision
from genoshare.access.privacy import Caller, PrivacyGuard
from genoshare.access.privacy_state import SqlPrivacyState
from genoshare.store.db import Database
from genoshare.store.models import Dataset
from genoshare_lab.roundtrips import counted

BOOLEAN = Decision("cohort", Granularity.BOOLEAN, "test")
ANSWERS = 30


@dataclass
class Researcher:
    """A registered researcher asking through the guard, under the node's default policy for them."""

    guard: PrivacyGuard
    dataset: Dataset
    caller: Caller

    def ask(self, key: str, carriers: list[int], allele_count: int) -> None:
        self.guard.filter_answer(self.caller, BOOLEAN, self.dataset, key, BitMap(carriers), allele_count)


@pytest.fixture
def researcher(database: Database) -> Researcher:
    """Budgets, randomised response and the attack watch as the node sets them for registered users.

    Rate limits are off, as in ``benchmarks/beacon_server.py``: thirty questions in a second is what they stop.
    Who the caller is (their linked identities) is looked up once: the Beacon keeps it for ``max_age``.
    """
    with database.session() as session:
        dataset = session.get(Dataset, "cohort")
        assert dataset is not None
        dataset.beacon_policy = {"privacy": {"default": {"per_minute": None, "per_day": None}}}
    guard = PrivacyGuard(SqlPrivacyState(database), rng=random.Random(1), watch=SqlAttackWatch(database, None))
    return Researcher(guard, dataset, guard.caller(Identity("researcher", "https://login.example.org")))


def test_an_answer_is_one_statement_and_one_round_trip(database: Database, researcher: Researcher) -> None:
    """A question on a common allele (no attack watch count): its whole write in one statement per answer."""
    researcher.ask("first", list(range(40)), 60)  # the first answer reads the person's state
    with counted() as counts:
        for i in range(ANSWERS):
            researcher.ask(f"allele-{i}", list(range(i, i + 40)), 60)
    if database.engine.dialect.name == "postgresql":
        assert (counts.statements, counts.round_trips) == (ANSWERS, ANSWERS)
    else:
        # In the process: no round trip. The compare-and-set, the spends (new members and others), the answer.
        assert counts.round_trips == 0
        assert counts.statements <= 4 * ANSWERS


def test_a_rare_allele_is_counted_by_the_watch_in_the_same_write(database: Database, researcher: Researcher) -> None:
    """A question on a rare allele is counted by the attack watch too: on PostgreSQL in the answer's statement."""
    researcher.ask("first", list(range(40)), 60)
    with counted() as counts:
        for i in range(ANSWERS):
            researcher.ask(f"rare-{i}", [i, 100 + i], 2)
    if database.engine.dialect.name == "postgresql":
        assert (counts.statements, counts.round_trips) == (ANSWERS, ANSWERS)
    else:
        # The answer's write as above, then the watch's: its count and the carriers' hits, new ones inserted.
        assert counts.round_trips == 0
        assert counts.statements <= (4 + 3) * ANSWERS
