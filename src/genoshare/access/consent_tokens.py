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

    def people(self, secret: str | None) -> list[Participant]:
        """Every record the link opens: its participant's, and theirs in other datasets (``person_key``)."""
        return self.people_of(token_hash(secret) if secret else None) or [self.participant(secret)]

    def people_of(self, stored_hash: str | None) -> list[Participant]:
        """The records a link with this hash opens now (a portal session keeps the hash, never the secret).

        Empty once the steward replaced the link: a session opened with the old one then opens nothing.
        """
        if not stored_hash:
            return []
        with self.database.sessions() as session:
            owner = session.scalar(select(Participant).where(Participant.token_hash == stored_hash))
            if owner is None:
                return []
            if owner.person_key is None:
                return [owner]
            return list(
                session.scalars(
                    select(Participant)
                    .where(Participant.person_key == owner.person_key)
                    .order_by(Participant.dataset_id, Participant.id)
                )
            )
