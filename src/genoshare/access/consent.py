"""Whose narrowed consent excludes a grant: the participants a grantee's files and Beacon answers leave out.

A participant may narrow their consent with DUO modifiers (e.g. ``NCU``, no commercial use) on top of the
dataset's codes.  A grant this node signed carries the purpose its access request declared; the person is
excluded from the grant when the DUO matcher denies that purpose under the dataset's codes plus theirs.
The decision is taken from the consent as it stands now, at every request, never from a list frozen at
approval: a narrowing takes effect at the next request, and widening again restores access.

Access whose purpose this node does not know cannot be shown to fit a narrowing, so a narrowed person is
left out of it (fail closed): grants of other issuers or committees, and public or registered access, which
relies on no grant at all.  A caller relying on several grants sees a person only if every grant allows
them: the answer is not bound to one project.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import select

from genoshare.duo.codes import parse_code, parse_dataset_codes
from genoshare.duo.decision import Outcome
from genoshare.duo.matching import match
from genoshare.duo.purpose import ResearchPurpose
from genoshare.store.db import Database
from genoshare.store.models import AccessRequest, Dataset, Grant, Participant

ACTIVE = "active"
#: Seconds a dataset's narrowings are trusted before the database is asked again (Beacon answers); files
#: read them afresh on every request. The same bound as Beacon's view of withdrawals.
REVALIDATE_AFTER = 0.25


def denial_reasons(purpose: ResearchPurpose, dataset_codes: Sequence[str], narrowing: Sequence[str]) -> tuple[str, ...]:
    """Why the person's own narrowing forbids ``purpose``; empty when it does not."""
    if not narrowing:
        return ()
    return _denial_reasons(purpose.model_dump_json(), tuple(dataset_codes), tuple(sorted(narrowing)))


@lru_cache(maxsize=4096)
def _denial_reasons(purpose_json: str, dataset_codes: tuple[str, ...], narrowing: tuple[str, ...]) -> tuple[str, ...]:
    """Memoised on the texts: a cohort has a handful of distinct narrowings, and grants few purposes."""
    purpose = ResearchPurpose.model_validate_json(purpose_json)
    extra = [parse_code(code) for code in narrowing]
    result = match(purpose, (*parse_dataset_codes(dataset_codes), *extra))
    denied = [d for d in result.decisions if d.code in extra and d.outcome is Outcome.DENY]
    return tuple(reason for d in denied for reason in (d.reasons or (f"{d.code} forbids this purpose",)))


@dataclass(frozen=True)
class _Narrowings:
    checked_at: float
    codes: tuple[str, ...]
    #: Active participants with a narrowing: pseudonym -> their DUO modifiers.
    people: Mapping[str, tuple[str, ...]]


class ConsentExclusions:
    """The participants of a dataset excluded from the grants a caller relies on."""

    def __init__(self, database: Database, max_age: float = REVALIDATE_AFTER) -> None:
        self.database = database
        self.max_age = max_age
        #: Grant id -> (dataset, purpose); a signed grant's purpose never changes.
        self._purposes: dict[str, tuple[str, ResearchPurpose]] = {}
        self._narrowings: dict[str, _Narrowings] = {}
        self._lock = threading.Lock()

    def invalidate(self, dataset_id: str | None = None) -> None:
        """Make a consent change made in this process visible now rather than within ``max_age``."""
        with self._lock:
            if dataset_id is None:
                self._narrowings.clear()
            else:
                self._narrowings.pop(dataset_id, None)

    def purposes(self, dataset_id: str, grant_ids: Iterable[str]) -> list[ResearchPurpose]:
        """The declared purposes of those grants that this node signed for ``dataset_id``."""
        ids = [grant_id for grant_id in dict.fromkeys(grant_ids) if grant_id]
        missing = [grant_id for grant_id in ids if grant_id not in self._purposes]
        if missing:
            with self.database.sessions() as session:
                rows = session.execute(
                    select(Grant.id, Grant.dataset_id, AccessRequest.purpose)
                    .join(AccessRequest, AccessRequest.id == Grant.request_id)
                    .where(Grant.id.in_(missing))
                ).all()
            with self._lock:
                if len(self._purposes) > 100_000:
                    self._purposes.clear()
                for grant_id, grant_dataset, purpose in rows:
                    self._purposes[grant_id] = (grant_dataset, ResearchPurpose.model_validate(purpose))
        known = [self._purposes.get(grant_id) for grant_id in ids]
        return [item[1] for item in known if item is not None and item[0] == dataset_id]

    def excluded(
        self, dataset_id: str, grant_ids: Iterable[str], people: Mapping[str, Sequence[str]], codes: Sequence[str]
    ) -> frozenset[str]:
        """Which of ``people`` (pseudonym -> narrowing) a grant relied on excludes, under the dataset's codes."""
        narrowed = {name: extra for name, extra in people.items() if extra}
        if not narrowed:
            return frozenset()
        relied_on = [grant_id for grant_id in dict.fromkeys(grant_ids) if grant_id]
        purposes = self.purposes(dataset_id, relied_on)
        if not relied_on or len(purposes) < len(relied_on):
            return frozenset(narrowed)  # some access has no purpose known here: nothing shows it fits
        return frozenset(
            name
            for name, extra in narrowed.items()
            if any(denial_reasons(purpose, codes, extra) for purpose in purposes)
        )

    def in_dataset(self, dataset_id: str, grant_ids: Sequence[str]) -> frozenset[str]:
        """The active participants of a dataset those grants exclude; narrowings re-read every ``max_age``."""
        known = self._narrowings.get(dataset_id)
        if known is None or time.monotonic() - known.checked_at >= self.max_age:
            known = self._read(dataset_id)
            with self._lock:
                self._narrowings[dataset_id] = known
        return self.excluded(dataset_id, grant_ids, known.people, known.codes)

    def _read(self, dataset_id: str) -> _Narrowings:
        with self.database.reads() as session:
            codes = session.scalar(select(Dataset.duo_codes).where(Dataset.id == dataset_id)) or []
            rows = session.execute(
                select(Participant.pseudonym, Participant.consent_restrictions).where(
                    Participant.dataset_id == dataset_id, Participant.consent_status == ACTIVE
                )
            ).all()
        return _Narrowings(time.monotonic(), tuple(codes), {name: tuple(extra) for name, extra in rows if extra})
