"""The PostgreSQL pool pings a connection only when it may have gone (``store.pg_pool``), never hands out a dead one.

A ping on every checkout was half of a Beacon answer's round trips. A connection the server ended (a restart,
``pg_terminate_backend``) must still be replaced before a request uses it, and one idle for long pinged.
"""

from __future__ import annotations

import os
import time

import pytest
from sqlalchemy import create_engine, text

from genoshare.store import pg_pool
from genoshare.store.db import Database
from genoshare_lab.roundtrips import counted

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


def ask(database: Database) -> int:
    """One statement on a pooled connection, in autocommit: one round trip, and the ping if there is one."""
    with database.engine.execution_options(isolation_level="AUTOCOMMIT").connect() as connection:
        return int(connection.scalar(text("SELECT pg_backend_pid()")))


def test_a_busy_connection_is_not_pinged_and_an_idle_one_is(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    database = Database(database_url)
    try:
        ask(database)
        with counted() as counts:
            for _ in range(5):
                ask(database)
        assert (counts.statements, counts.round_trips) == (5, 5)
        monkeypatch.setattr(pg_pool, "PING_AFTER_IDLE_SECONDS", 0.0)  # every connection counts as idle too long
        with counted() as counts:
            ask(database)
        assert (counts.statements, counts.round_trips) == (1, 2)
    finally:
        database.dispose()


def test_a_connection_the_server_ended_is_replaced_before_it_is_used(database_url: str) -> None:
    """The server ends the pooled connections (as in a restart): the next requests get new ones, and no error."""
    database = Database(database_url)
    admin = create_engine(os.environ["GENOSHARE_TEST_POSTGRES_URL"], isolation_level="AUTOCOMMIT")
    try:
        with database.engine.connect() as one, database.engine.connect() as two:
            pids = {one.scalar(text("SELECT pg_backend_pid()")), two.scalar(text("SELECT pg_backend_pid()"))}
        with admin.connect() as connection:
            for pid in pids:
                connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            for _ in range(100):
                alive = connection.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(:pids)"), {"pids": list(pids)}
                )
                if not alive:
                    break
                time.sleep(0.05)
        with counted() as counts:
            new = {ask(database), ask(database)}
        assert not new & pids
        assert counts.round_trips > counts.statements  # found by a ping, not by a request's statement failing
    finally:
        admin.dispose()
        database.dispose()


def test_a_read_session_is_one_round_trip_per_statement(database_url: str) -> None:
    """What the Beacon re-reads every quarter second costs its statements, without a BEGIN and a ROLLBACK."""
    database = Database(database_url)
    try:
        with database.reads() as session:
            session.execute(text("SELECT 1"))
        with counted() as counts, database.reads() as session:
            session.execute(text("SELECT 1"))
            session.execute(text("SELECT 2"))
        assert (counts.statements, counts.round_trips) == (2, 2)
        with database.session() as session:  # a unit of work keeps its transaction
            session.execute(text("CREATE TABLE written (n integer)"))
            session.execute(text("INSERT INTO written VALUES (1)"))
        with database.reads() as session:
            assert session.scalar(text("SELECT count(*) FROM written")) == 1
    finally:
        database.dispose()
