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
from typing import Any

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


#: Beside the secret after ``genoshare rotate ticket-secret``: the secret it replaced.
PREVIOUS_SUFFIX = ".previous"
#: How often a running server looks whether the secret file was replaced (a rotation).
RELOAD_SECONDS = 1.0


class TicketSigner:
    """Signs and checks tickets; follows a rotation of its secret file without a restart.

    After a rotation the previous secret still opens the tickets it signed, and only those: a ticket under
    it must expire within ``ttl_seconds`` of the rotation, as every ticket issued before it does. A leaked
    old secret therefore cannot mint tickets that outlive the rotation by more than one ticket lifetime.
    """

    def __init__(
        self, secret: bytes, ttl_seconds: int, previous: bytes | None = None, previous_until: float = 0
    ) -> None:
        self._key = OctKey.import_key(secret)
        self._previous = OctKey.import_key(previous) if previous else None
        self._previous_until = previous_until
        #: Lifetime of the tickets ``for_read`` issues (``Settings.ticket_ttl_seconds``).
        self.ttl_seconds = ttl_seconds
        self._path: Path | None = None
        self._seen: int | None = None
        self._checked = 0.0

    @classmethod
    def load_or_create(cls, path: Path, ttl_seconds: int) -> TicketSigner:
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as handle:
                handle.write(secrets.token_bytes(32))
        signer = cls(path.read_bytes(), ttl_seconds)
        signer._path = path
        signer._load()
        return signer

    def _load(self) -> None:
        assert self._path is not None
        stat = self._path.stat()
        previous = self._path.with_name(self._path.name + PREVIOUS_SUFFIX)
        self._key = OctKey.import_key(self._path.read_bytes())
        if previous.is_file():
            self._previous = OctKey.import_key(previous.read_bytes())
            self._previous_until = stat.st_mtime + self.ttl_seconds
        self._seen, self._checked = stat.st_mtime_ns, time.monotonic()

    def _follow_rotation(self) -> None:
        if self._path is None or time.monotonic() - self._checked < RELOAD_SECONDS:
            return
        self._checked = time.monotonic()
        try:
            if self._path.stat().st_mtime_ns != self._seen:
                self._load()
        except OSError:
            pass  # mid-rotation: keep the keys in memory, look again next time

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
        self._follow_rotation()
        return jwt.encode({"alg": "HS256"}, claims, self._key, algorithms=["HS256"])

    def verify(self, token: str, object_id: str) -> Ticket:
        self._follow_rotation()
        try:
            claims: dict[str, Any] = jwt.decode(token, self._key, algorithms=["HS256"]).claims
        except (JoseError, ValueError, TypeError, UnicodeError) as error:
            before = self._under_previous(token)
            if before is None:
                raise Unauthenticated("data ticket is malformed or not signed by this node") from error
            claims = before
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

    def _under_previous(self, token: str) -> dict[str, Any] | None:
        """The claims of a ticket signed before the last rotation, if it expires within a lifetime of it."""
        if self._previous is None:
            return None
        try:
            claims = dict(jwt.decode(token, self._previous, algorithms=["HS256"]).claims)
        except (JoseError, ValueError, TypeError, UnicodeError):
            return None
        expires = claims.get("exp")
        return claims if isinstance(expires, int) and expires <= self._previous_until else None
