"""Dynamic consent: a record per participant and dataset, to see, narrow or withdraw.

Stewards act from the command line; participants through the API with their own secret token.  A
narrowing (or lifting it again) is one row update: the access policy reads it at the next request and
serves shared files without the person, and leaves them out of Beacon answers, for grants it excludes.

A withdrawal is one row update; every API reads consent from the database on its next request (the
access policy for files, the Beacon's consent-aware sample sets for counts and records), so it takes effect
at once.  Files holding the person alongside others are blocked (``status = rederiving``) and rewritten
without their columns by ``genoshare.governance.rederive``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from genoshare.access.consent_tokens import new_token
from genoshare.audit import AuditLog, Entry
from genoshare.duo.codes import parse_code
from genoshare.duo.errors import DuoError
from genoshare.errors import Conflict, InvalidInput, NotFound
from genoshare.store.db import Database
from genoshare.store.models import DataObject, ObjectParticipant, Participant, utcnow

ACTIVE, WITHDRAWN = "active", "withdrawn"


#: Said to a withdrawn person who tries to change a choice: it would be recorded and change nothing.
WITHDRAWN_MESSAGE = (
    "You have withdrawn your consent for this dataset: your data is no longer used, so there is no choice "
    "left to change. To take part again, contact the dataset's steward."
)


def _still_consenting(stored: Participant | None) -> Participant:
    """``stored``, unless the person withdrew: a choice made after withdrawal would be a record of nothing."""
    assert stored is not None
    if stored.consent_status != ACTIVE:
        raise Conflict(WITHDRAWN_MESSAGE)
    return stored


@dataclass(frozen=True)
class ConsentRecord:
    dataset: str
    participant: str
    status: str
    restrictions: tuple[str, ...]
    updated_at: str | None
    files: tuple[str, ...]
    #: Whether the person allows rare-disease matchmaking: True, False, or None (not asked; then the
    #: dataset's consent codes decide, ``genoshare.access.matchmaking``).
    matchmaking: bool | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "participant": self.participant,
            "status": self.status,
            "restrictions": list(self.restrictions),
            "updated_at": self.updated_at,
            "files": list(self.files),
            "matchmaking": self.matchmaking,
        }


@dataclass(frozen=True)
class Withdrawal:
    record: ConsentRecord
    #: Files now unavailable because the person was the only one in them.
    unavailable: tuple[str, ...]
    #: Files blocked until they are rewritten without the person.
    rederiving: tuple[str, ...]


class ConsentService:
    """Consent records and their changes; which participant a consent token speaks for is ``access``'s call.

    ``changed`` are told the dataset of every change (caches of consent that should see it now rather than
    when they next look: the access policy's narrowings, Beacon's sample sets); ``rederive`` is given the
    files a withdrawal blocked (the server's background worker; without it they wait for ``genoshare
    consent rederive``).
    """

    def __init__(
        self,
        database: Database,
        audit: AuditLog,
        *,
        changed: Sequence[Callable[[str], object]] = (),
        rederive: Callable[[Sequence[str]], object] | None = None,
    ) -> None:
        self.database = database
        self.audit = audit
        self.changed = tuple(changed)
        self.rederive = rederive

    def find(self, dataset_id: str, pseudonym: str) -> Participant:
        with self.database.sessions() as session:
            participant = session.scalar(
                select(Participant).where(Participant.dataset_id == dataset_id, Participant.pseudonym == pseudonym)
            )
        if participant is None:
            raise NotFound(f"no participant {pseudonym!r} in dataset {dataset_id!r}")
        return participant

    def record(self, participant: Participant) -> ConsentRecord:
        with self.database.sessions() as session:
            files = tuple(
                session.scalars(
                    select(ObjectParticipant.object_id)
                    .where(ObjectParticipant.participant_id == participant.id)
                    .order_by(ObjectParticipant.object_id)
                )
            )
        updated = participant.consent_updated_at
        return ConsentRecord(
            participant.dataset_id,
            participant.pseudonym,
            participant.consent_status,
            tuple(participant.consent_restrictions or ()),
            updated.isoformat() if updated else None,
            files,
            participant.matchmaking,
        )

    def records(self, dataset_id: str) -> list[ConsentRecord]:
        with self.database.sessions() as session:
            people = list(
                session.scalars(
                    select(Participant).where(Participant.dataset_id == dataset_id).order_by(Participant.pseudonym)
                )
            )
        return [self.record(person) for person in people]

    def issue_link(self, participant: Participant, actor: str, also: Sequence[Participant] = ()) -> str:
        """A new secret for the participant (replacing any earlier one); only its hash is kept.

        ``also``: the same person's records in other datasets, which the one link then reaches too (their
        own earlier links stop working).
        """
        token = new_token()
        with self.database.session() as session:
            stored = session.get(Participant, participant.id)
            assert stored is not None
            stored.token_hash = token.stored_hash
            others = [session.get(Participant, other.id) for other in also if other.id != participant.id]
            if others:
                stored.person_key = stored.person_key or str(uuid.uuid4())
                for other in others:
                    assert other is not None
                    other.person_key, other.token_hash = stored.person_key, None
        linked = "".join(f", also {other.dataset_id}/{other.pseudonym}" for other in also)
        self._audit(actor, "consent.link", participant, "issue", f"consent link issued{linked}")
        return token.secret

    def narrow(self, participant: Participant, codes: list[str], actor: str) -> ConsentRecord:
        """Add DUO modifiers (e.g. NCU, NPU, NPOA) to what this person allows; never widens."""
        try:
            parsed = [parse_code(code) for code in codes]
        except DuoError as error:
            raise InvalidInput(str(error)) from error
        primaries = [str(code) for code in parsed if code.is_primary]
        if primaries:
            raise InvalidInput(f"narrowing takes modifiers such as NCU or NPU, not permissions: {primaries}")
        with self.database.session() as session:
            stored = _still_consenting(session.get(Participant, participant.id))
            stored.consent_restrictions = sorted({*(stored.consent_restrictions or []), *map(str, parsed)})
            stored.consent_updated_at = utcnow()
            updated = stored
        self._audit(actor, "consent.narrow", participant, "narrow", ", ".join(map(str, parsed)))
        # Files read consent at every request; this makes Beacon in this process see it now, not within 0.25 s.
        self._changed(participant.dataset_id)
        return self.record(updated)

    def widen(self, participant: Participant, codes: list[str], actor: str) -> ConsentRecord:
        """Lift narrowings this person added earlier (e.g. NCU); the dataset's own codes stay as they are.

        Access to their data under grants the narrowing excluded returns at the next request.
        """
        try:
            lifted = {str(parse_code(code)) for code in codes}
        except DuoError as error:
            raise InvalidInput(str(error)) from error
        with self.database.session() as session:
            stored = _still_consenting(session.get(Participant, participant.id))
            current = set(stored.consent_restrictions or [])
            if not lifted <= current:
                raise InvalidInput(
                    f"{', '.join(sorted(lifted - current))} is not among your narrowings ({', '.join(sorted(current))})"
                )
            stored.consent_restrictions = sorted(current - lifted)
            stored.consent_updated_at = utcnow()
            updated = stored
        self._audit(actor, "consent.widen", participant, "widen", ", ".join(sorted(lifted)))
        self._changed(participant.dataset_id)
        return self.record(updated)

    def set_matchmaking(self, participant: Participant, allow: bool, actor: str) -> ConsentRecord:
        """Record the person's matchmaking choice; the next match request shows or leaves them out by it."""
        with self.database.session() as session:
            stored = _still_consenting(session.get(Participant, participant.id))
            stored.matchmaking = allow
            stored.consent_updated_at = utcnow()  # matchmaking re-reads consent when this moves
            updated = stored
        choice = "allow" if allow else "refuse"
        self._audit(actor, "consent.matchmaking", participant, choice, f"matchmaking {choice}ed by the participant")
        self._changed(participant.dataset_id)
        return self.record(updated)

    def withdraw(self, participant: Participant, actor: str) -> Withdrawal:
        """Withdraw at once: no API serves the person from the next request; shared files are rewritten."""
        with self.database.session() as session:
            stored = session.get(Participant, participant.id)
            assert stored is not None
            stored.consent_status, stored.consent_updated_at = WITHDRAWN, utcnow()
            unavailable, rederiving = [], []
            # Locked: a re-derivation of one of these files publishes wholly before this or after (and then
            # finds this withdrawal), never with the file marked available over this mark. In one order, so
            # that two people of the same files withdrawing at once do not deadlock.
            for row in session.scalars(
                select(DataObject)
                .join(ObjectParticipant, ObjectParticipant.object_id == DataObject.id)
                .where(ObjectParticipant.participant_id == stored.id)
                .order_by(DataObject.id)
                .with_for_update(of=DataObject)
            ):
                others = session.scalar(
                    select(Participant.id)
                    .join(ObjectParticipant, ObjectParticipant.participant_id == Participant.id)
                    .where(
                        ObjectParticipant.object_id == row.id,
                        Participant.id != stored.id,
                        Participant.consent_status == ACTIVE,
                    )
                    .limit(1)
                )
                if others is None:
                    unavailable.append(row.id)
                else:
                    row.status = "rederiving"
                    rederiving.append(row.id)
            withdrawn = stored
        self._audit(
            actor,
            "consent.withdraw",
            participant,
            "withdraw",
            f"{len(unavailable)} files now unavailable, {len(rederiving)} to re-derive",
        )
        if self.rederive is not None:
            self.rederive(rederiving)
        # Beacon re-reads consent within half a second anyway; this makes it immediate in this process.
        self._changed(participant.dataset_id)
        return Withdrawal(self.record(withdrawn), tuple(unavailable), tuple(rederiving))

    def _changed(self, dataset_id: str) -> None:
        for listener in self.changed:
            listener(dataset_id)

    def _audit(self, actor: str, action: str, participant: Participant, decision: str, reason: str) -> None:
        self.audit.record(
            Entry(
                actor,
                action,
                f"participants/{participant.dataset_id}/{participant.pseudonym}",
                decision,
                reason,
                {"dataset": participant.dataset_id},
            )
        )
