"""Server-side portal sessions: a random secret in an HttpOnly cookie, a row per session in the database.

The row is keyed by the secret's sha256, so the database alone cannot be turned into a cookie. What a
session must keep secret (the caller's passport) is sealed with a key derived from the cookie's secret:
a copy of the table opens nothing either. Revoking a session (sign-out, or a steward ending every session
of an account) is setting ``revoked_at``; the next request finds no session.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import Select, delete, select, update

from genoshare.store.db import Database
from genoshare.store.models import PortalSession, utcnow

VISITOR = "visitor"
PASSPORT = "passport"
PARTICIPANT = "participant"
#: A visitor's session (language, CSRF token of the sign-in form) is cheap to make again: kept briefly.
VISITOR_HOURS = 2


def load_or_create_key(path: Path) -> bytes:
    """The 32-byte key in ``path``, made on first use; several serve processes starting at once agree on one.

    Written whole to a file of its own, then linked into place: a process never reads a half-written key,
    and the one that links second reads the first one's.
    """
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(secrets.token_bytes(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_bytes()


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _seal_key(secret: str) -> bytes:
    return HKDF(algorithm=SHA256(), length=32, salt=None, info=b"genoshare portal session seal").derive(secret.encode())


@dataclass
class Session:
    """One portal session as a request sees it; ``data`` changes are written back by ``SessionStore.save``."""

    id: str
    secret: str = field(repr=False)
    kind: str
    actor: str
    expires_at: dt.datetime
    data: dict[str, Any]
    #: Made by this request: its cookie must be set on the response.
    new: bool = False
    dirty: bool = False

    @property
    def csrf_token(self) -> str:
        return str(self.data["csrf"])

    def set(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.dirty = True

    def pop(self, key: str, default: Any = None) -> Any:
        if key not in self.data:
            return default
        self.dirty = True
        return self.data.pop(key)

    def seal(self, key: str, value: str) -> None:
        """Keep ``value`` encrypted under a key only this session's cookie derives."""
        nonce = os.urandom(12)
        sealed = ChaCha20Poly1305(_seal_key(self.secret)).encrypt(nonce, value.encode(), self.id.encode())
        self.set(key, base64.b64encode(nonce + sealed).decode())

    def unseal(self, key: str) -> str | None:
        raw = self.data.get(key)
        if not isinstance(raw, str):
            return None
        blob = base64.b64decode(raw)
        return ChaCha20Poly1305(_seal_key(self.secret)).decrypt(blob[:12], blob[12:], self.id.encode()).decode()


class SessionStore:
    def __init__(self, database: Database, signed_in_hours: float) -> None:
        self.database = database
        self.signed_in = dt.timedelta(hours=signed_in_hours)

    def create(self, kind: str, actor: str = "", data: dict[str, Any] | None = None) -> Session:
        """A new session with a fresh CSRF token; expired rows are swept on the way."""
        secret = secrets.token_urlsafe(32)
        now = utcnow()
        expires = now + (dt.timedelta(hours=VISITOR_HOURS) if kind == VISITOR else self.signed_in)
        values = {**(data or {}), "csrf": secrets.token_urlsafe(32)}
        session = Session(_digest(secret), secret, kind, actor, expires, values, new=True)
        with self.database.session() as db:
            db.execute(delete(PortalSession).where(PortalSession.expires_at < now))
            db.add(PortalSession(id=session.id, kind=kind, actor=actor, expires_at=expires, data=values))
        return session

    def get(self, secret: str | None) -> Session | None:
        """The live session this cookie secret opens, or None (unknown, expired or revoked)."""
        if not secret or len(secret) > 100:
            return None
        with self.database.sessions() as db:
            row = db.get(PortalSession, _digest(secret))
        if row is None or row.revoked_at is not None or row.expires_at <= utcnow():
            return None
        return Session(row.id, secret, row.kind, row.actor, row.expires_at, dict(row.data or {}))

    def save(self, session: Session) -> None:
        if not session.dirty:
            return
        with self.database.session() as db:
            db.execute(update(PortalSession).where(PortalSession.id == session.id).values(data=dict(session.data)))
        session.dirty = False

    def revoke(self, session: Session) -> None:
        with self.database.session() as db:
            db.execute(update(PortalSession).where(PortalSession.id == session.id).values(revoked_at=utcnow()))

    def others(self, session: Session) -> int:
        """How many other live sessions the account of ``session`` has (other browsers, other devices)."""
        with self.database.sessions() as db:
            return len(list(db.scalars(self._others(session).with_only_columns(PortalSession.id))))

    def revoke_others(self, session: Session) -> int:
        """End every live session of this account but ``session``: "signed in elsewhere, end it"."""
        with self.database.session() as db:
            ids = list(db.scalars(self._others(session).with_only_columns(PortalSession.id)))
            if ids:
                db.execute(update(PortalSession).where(PortalSession.id.in_(ids)).values(revoked_at=utcnow()))
            return len(ids)

    @staticmethod
    def _others(session: Session) -> Select[PortalSession]:
        return select(PortalSession).where(
            PortalSession.actor == session.actor,
            PortalSession.kind == session.kind,
            PortalSession.id != session.id,
            PortalSession.revoked_at.is_(None),
            PortalSession.expires_at > utcnow(),
        )

    def revoke_actor(self, actor: str) -> int:
        """End every live session of one account (a steward's action, or a withdrawn consent link)."""
        with self.database.session() as db:
            result = db.execute(
                update(PortalSession)
                .where(PortalSession.actor == actor, PortalSession.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return int(getattr(result, "rowcount", 0) or 0)
