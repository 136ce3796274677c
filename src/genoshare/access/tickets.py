"""Short-lived signed tickets for the data URLs that DRS and htsget hand out.

A ticket is an HS256 JWT under a secret only this node knows.  It binds the caller, the object and the
grants the decision relied on, so that the data endpoint can re-check revocation on every range request
without the caller sending its passport again.  ``TicketSigner.for_read`` is the one way DRS and htsget
make them, so both bind the same things (and a new binding reaches both).
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from genoshare.access.passports import ANONYMOUS, Identity
from genoshare.errors import Unauthenticated
from genoshare.store.models import DataObject

AUDIENCE = "genoshare-data"


@dataclass(frozen=True)
class Ticket:
    actor: str
    object_id: str
    dataset_id: str
    grants: tuple[str, ...]
    expires: int
    #: Crypt4GH public key (base64) the bytes must be re-encrypted to, when the client asked for that.
    recipient_key: str | None = None
    #: sha-256 of the bytes the ticket was issued for (the file, or its subset for this grant), so that ranges
    #: computed on them are never served from other bytes after a consent change.
    version: str | None = None


class TicketSigner:
    def __init__(self, secret: bytes, ttl_seconds: int) -> None:
        self._key = OctKey.import_key(secret)
        #: Lifetime of the tickets ``for_read`` issues (``Settings.ticket_ttl_seconds``).
        self.ttl_seconds = ttl_seconds

    @classmethod
    def load_or_create(cls, path: Path, ttl_seconds: int) -> TicketSigner:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        return cls(path.read_bytes(), ttl_seconds)

    def for_read(
        self,
        identity: Identity | None,
        served: DataObject,
        grants: tuple[str, ...],
        recipient_key: bytes | None = None,
    ) -> str:
        """A ticket to read ``served`` (the file, or its subset for these grants) under the decision's ``grants``.

        Bound to ``served``'s checksum, so that ranges computed on these bytes are never served from others.
        """
        return self.issue(
            Ticket(
                actor=identity.actor if identity else ANONYMOUS,
                object_id=served.id,
                dataset_id=served.dataset_id,
                grants=grants,
                expires=int(time.time()) + self.ttl_seconds,
                recipient_key=base64.b64encode(recipient_key).decode() if recipient_key else None,
                version=served.sha256,
            )
        )

    def issue(self, ticket: Ticket) -> str:
        claims = {
            "aud": AUDIENCE,
            "sub": ticket.actor,
            "obj": ticket.object_id,
            "ds": ticket.dataset_id,
            "grants": list(ticket.grants),
            "exp": ticket.expires,
        }
        if ticket.recipient_key:
            claims["rk"] = ticket.recipient_key
        if ticket.version:
            claims["ver"] = ticket.version
        return jwt.encode({"alg": "HS256"}, claims, self._key, algorithms=["HS256"])

    def verify(self, token: str, object_id: str) -> Ticket:
        try:
            claims = jwt.decode(token, self._key, algorithms=["HS256"]).claims
        except (JoseError, ValueError, TypeError, UnicodeError) as error:
            raise Unauthenticated("data ticket is malformed or not signed by this node") from error
        if claims.get("aud") != AUDIENCE or claims.get("obj") != object_id:
            raise Unauthenticated("data ticket is for another object")
        if not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
            raise Unauthenticated("data ticket expired: ask DRS or htsget for a new URL")
        return Ticket(
            actor=str(claims.get("sub")),
            object_id=object_id,
            dataset_id=str(claims.get("ds")),
            grants=tuple(claims.get("grants") or ()),
            expires=claims["exp"],
            recipient_key=claims.get("rk"),
            version=claims.get("ver"),
        )
