"""Which participant a consent token speaks for.

A participant sees and changes their own consent with the secret from their consent link, not a passport:
they need no account anywhere. The node keeps only the secret's SHA-256 (a 256-bit random secret needs no
slow hash), so a copy of the database lets no one act for anybody. A new link replaces the old secret.

The API (``X-Consent-Token``) and the web portal both ask ``ConsentTokens.participant``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from genoshare.errors import Unauthenticated
from genoshare.store.db import Database
from genoshare.store.models import Participant


@dataclass(frozen=True)
class NewToken:
    #: Handed to the participant once, never stored.
    secret: str
    #: What the node stores (``Participant.token_hash``) to recognise it.
    stored_hash: str


def token_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token() -> NewToken:
    secret = secrets.token_urlsafe(32)
    return NewToken(secret, token_hash(secret))


class ConsentTokens:
    def __init__(self, database: Database) -> None:
        self.database = database

    def participant(self, secret: str | None) -> Participant:
        """The participant whose consent link holds this secret; ``Unauthenticated`` without one, or for another."""
        if not secret:
            raise Unauthenticated("send your consent token (the secret from your consent link) in X-Consent-Token")
        with self.database.sessions() as session:
            participant = session.scalar(select(Participant).where(Participant.token_hash == token_hash(secret)))
        if participant is None:
            raise Unauthenticated("unknown consent token")
        return participant
