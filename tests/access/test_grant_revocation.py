"""A revoked grant stops counting for the access decision from the next request on, though answers are cached."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import event, update
from sqlalchemy.orm import Session, sessionmaker

from genoshare.access.granularity import Granularity
from genoshare.access.passports import Identity, Visa
from genoshare.access.policy import CONTROLLED_ACCESS_GRANTS, GRANT_LISTENERS, AccessPolicy
from genoshare.audit import AuditLog
from genoshare.store.db import Database, migrate
from genoshare.store.models import AccessRequest, Dataset, Grant, utcnow

GRANT_ID = "11111111-2222-3333-4444-555555555555"


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate(database.engine)
    with database.session() as session:
        session.add(Dataset(id="cohort", title="cohort", custodian="steward", access_level="controlled"))
        session.add(
            AccessRequest(
                id="r1", requester="alice@issuer", datasets=["cohort"], purpose={}, project_title="p",
                institution="i", status="approved",
            )
        )  # fmt: skip
    with database.session() as session:
        session.add(
            Grant(id=GRANT_ID, request_id="r1", dataset_id="cohort", grantee="alice@issuer",
                  expires_at=utcnow() + timedelta(days=1))
        )  # fmt: skip
    yield database
    database.dispose()


def alice() -> Identity:
    visa = Visa(
        CONTROLLED_ACCESS_GRANTS,
        "https://node/datasets/cohort",
        "https://node",
        "dac",
        0,
        "https://node",
        2**31,
        GRANT_ID,
    )
    return Identity("alice", "https://issuer", (visa,))


def test_a_revocation_through_an_orm_session_takes_effect_on_the_next_decision(
    database: Database, tmp_path: Path
) -> None:
    policy = AccessPolicy(AuditLog(database, tmp_path / "audit.key"), database, "https://node")
    with database.sessions() as session:
        dataset = session.get(Dataset, "cohort")
    assert dataset is not None
    for _ in range(3):  # the second and third decisions come from memory
        assert policy.granularity(alice(), dataset).granularity == Granularity.RECORD
    with database.session() as session:  # as the access committee's revocation writes it
        grant = session.get(Grant, GRANT_ID)
        assert grant is not None
        grant.revoked_at, grant.revoked_by = utcnow(), "chair"
    assert policy.granularity(alice(), dataset).granularity == Granularity.BOOLEAN


def test_a_bulk_update_is_seen_at_once_too(database: Database, tmp_path: Path) -> None:
    policy = AccessPolicy(AuditLog(database, tmp_path / "audit.key"), database, "https://node")
    assert policy.revoked_grants([GRANT_ID]) == set()
    with database.session() as session:
        session.execute(update(Grant).where(Grant.id == GRANT_ID).values(revoked_at=utcnow()))
    assert policy.revoked_grants([GRANT_ID]) == {GRANT_ID}


def test_grant_writes_are_watched_on_the_node_sessions_only(database: Database, tmp_path: Path) -> None:
    """The listeners sit on the node's sessionmaker: importing genoshare leaves SQLAlchemy's ``Session`` alone."""
    AccessPolicy(AuditLog(database, tmp_path / "audit.key"), database, "https://node")
    AccessPolicy(AuditLog(database, tmp_path / "audit.key"), database, "https://node")  # a second one adds none
    for name, listener in GRANT_LISTENERS:
        assert not event.contains(Session, name, listener), name
        assert event.contains(database.sessions, name, listener), name
    other = sessionmaker()
    assert not any(event.contains(other, name, listener) for name, listener in GRANT_LISTENERS)
