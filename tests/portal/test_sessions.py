"""Portal sessions in the metadata database (SQLite and PostgreSQL): found by cookie, revocable, expiring."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from genoshare.node import Node
from genoshare.portal.sessions import PASSPORT, VISITOR, SessionStore
from genoshare.store.models import PortalSession


def test_a_session_is_found_by_its_cookie_only_and_keeps_its_data(node: Node) -> None:
    store = SessionStore(node.database, signed_in_hours=8)
    session = store.create(PASSPORT, "alice@issuer")
    session.seal("passport", "header.payload.signature")
    session.set("lang", "fr")
    store.save(session)
    again = store.get(session.secret)
    assert again is not None and again.actor == "alice@issuer" and again.data["lang"] == "fr"
    assert again.unseal("passport") == "header.payload.signature"
    assert again.csrf_token == session.csrf_token and len(again.csrf_token) >= 40
    assert store.get(session.id) is None, "the row's id is not a cookie"
    assert store.get("") is None and store.get("x" * 500) is None
    with node.database.sessions() as db:
        row = db.get(PortalSession, session.id)
    assert row is not None and "header.payload" not in str(row.data)


def test_revoked_and_expired_sessions_open_nothing(node: Node) -> None:
    store = SessionStore(node.database, signed_in_hours=8)
    first, second, other = (
        store.create(PASSPORT, "bob@issuer"),
        store.create(PASSPORT, "bob@issuer"),
        store.create(VISITOR),
    )
    store.revoke(first)
    assert store.get(first.secret) is None and store.get(second.secret) is not None
    assert store.revoke_actor("bob@issuer") == 1
    assert store.get(second.secret) is None and store.get(other.secret) is not None
    with node.database.session() as db:
        db.execute(
            update(PortalSession)
            .where(PortalSession.id == other.id)
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1))
        )
    assert store.get(other.secret) is None
    store.create(VISITOR)  # a new session sweeps the expired rows
    with node.database.sessions() as db:
        assert db.scalars(select(PortalSession).where(PortalSession.id == other.id)).first() is None
