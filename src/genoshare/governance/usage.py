"""Who used my data: who accessed a dataset or a participant's data, when, how much, by which route and why.

Built from the audit log, counting every way data leaves the node: bytes served by ``/data`` (for DRS and
htsget URLs alike), data handed out inline in htsget tickets (``data:`` URLs, often a whole small file),
DRS object and access requests, and Beacon answers at count or record level.  Each access is tied to the
approved requests whose grants it relied on.

For one participant an access counts when their data was in what was served: a file holding their column
or reads (and not served without them because their consent excludes the grant), or a Beacon answer whose
count or records covered them (the audit entry names the people by sample number).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from genoshare.audit import AuditLog
from genoshare.audit.people import decode_people
from genoshare.store.beacon_tables import BeaconIndividual
from genoshare.store.db import Database
from genoshare.store.models import AccessRequest, Grant, ObjectParticipant, Participant

#: Audit actions that mean data or metadata left the node for someone, and the route each is reported as.
ROUTES = {
    "data.read": "data",
    "htsget.ticket": "htsget",
    "drs.get": "drs",
    "drs.access": "drs",
    "beacon.query": "beacon",
    # A Matchmaker Exchange answer that showed the person's record to a peer's clinician.
    "mme.match": "matchmaking",
}
ACCESS_ACTIONS = tuple(ROUTES)


@dataclass
class Route:
    """One route's share of a use: requests, bytes that left the node, Beacon records and counts answered."""

    requests: int = 0
    bytes_served: int = 0
    records: int = 0
    counts: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "requests": self.requests,
            "bytes_served": self.bytes_served,
            "records": self.records,
            "counts": self.counts,
        }


@dataclass
class Use:
    actor: str
    first: datetime
    last: datetime
    requests: int = 0
    bytes_served: int = 0
    resources: set[str] = field(default_factory=set)
    projects: set[str] = field(default_factory=set)
    purposes: set[str] = field(default_factory=set)
    grants: set[str] = field(default_factory=set)
    routes: dict[str, Route] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.actor,
            "first_access": self.first.isoformat(),
            "last_access": self.last.isoformat(),
            "requests": self.requests,
            "bytes_served": self.bytes_served,
            "resources": sorted(self.resources),
            "projects": sorted(self.projects),
            "purposes": sorted(self.purposes),
            "grants": sorted(self.grants),
            "routes": {name: route.as_dict() for name, route in sorted(self.routes.items())},
        }


def _purpose_text(purpose: dict[str, Any]) -> str:
    diseases = " ".join(purpose.get("diseases") or ())
    flags = [
        name.replace("_", " ")
        for name in ("for_profit", "commercial", "methods_development", "population_ancestry")
        if purpose.get(name)
    ]
    return " ".join(part for part in (str(purpose.get("primary", "")), diseases, ", ".join(flags)) if part)


@dataclass(frozen=True)
class _Person:
    """What the report needs to know about one participant: their files and their Beacon sample numbers."""

    pseudonym: str
    files: frozenset[str]
    numbers: frozenset[int]
    #: Grants approved with this person excluded (their narrowed consent forbids the grant's purpose).
    excluded_from: frozenset[str] = frozenset()


@dataclass(frozen=True)
class _Served:
    """One access as the report counts it."""

    route: str
    resource: str
    bytes_served: int = 0
    records: int = 0
    counts: int = 0
    grants: tuple[str, ...] = ()


class UsageReports:
    """Who used a dataset, or one participant's data in it: read from the audit log and the grants."""

    def __init__(self, database: Database, audit: AuditLog) -> None:
        self.database = database
        self.audit = audit

    def of(self, dataset_id: str, participant: str | None = None, grant: str | None = None) -> list[Use]:
        """Uses of ``dataset_id`` (only those that served ``participant``'s data, or that relied on ``grant``).

        Busiest first.
        """
        with self.database.sessions() as session:
            person = None
            if participant is not None:
                files = session.scalars(
                    select(ObjectParticipant.object_id)
                    .join(Participant, Participant.id == ObjectParticipant.participant_id)
                    .where(Participant.dataset_id == dataset_id, Participant.pseudonym == participant)
                )
                numbers = session.scalars(
                    select(BeaconIndividual.sample_number).where(
                        BeaconIndividual.dataset_id == dataset_id, BeaconIndividual.pseudonym == participant
                    )
                )
                ids = set(
                    session.scalars(
                        select(Participant.id).where(
                            Participant.dataset_id == dataset_id, Participant.pseudonym == participant
                        )
                    )
                )
                excluded_from = frozenset(
                    grant_id
                    for grant_id, excluded in session.execute(
                        select(Grant.id, Grant.excluded_participants).where(Grant.dataset_id == dataset_id)
                    )
                    if ids & set(excluded or ())
                )
                person = _Person(participant, frozenset(files), frozenset(numbers), excluded_from)
            by_grant = {
                grant_id: request
                for grant_id, request in session.execute(
                    select(Grant.id, AccessRequest)
                    .join(AccessRequest, Grant.request_id == AccessRequest.id)
                    .where(Grant.dataset_id == dataset_id)
                )
            }
        uses: dict[str, Use] = {}
        for event in self.audit.entries():
            if event.action not in ROUTES or event.decision != "permit":
                continue
            details: Mapping[str, Any] = event.details or {}
            served = _served(event.action, event.resource, details, dataset_id, person)
            if served is None or (grant is not None and grant not in served.grants):
                continue
            use = uses.setdefault(event.actor, Use(event.actor, event.at, event.at))
            use.first, use.last = min(use.first, event.at), max(use.last, event.at)
            use.requests += 1
            use.bytes_served += served.bytes_served
            use.resources.add(served.resource)
            route = use.routes.setdefault(served.route, Route())
            route.requests += 1
            route.bytes_served += served.bytes_served
            route.records += served.records
            route.counts += served.counts
            for grant_id in served.grants:
                use.grants.add(grant_id)
                request = by_grant.get(grant_id)
                if request is not None:
                    use.projects.add(f"{request.project_title} ({request.institution})")
                    use.purposes.add(_purpose_text(request.purpose))
        return sorted(uses.values(), key=lambda u: (-u.requests, u.actor))


def _served(
    action: str,
    resource: str,
    details: Mapping[str, Any],
    dataset_id: str,
    person: _Person | None,
) -> _Served | None:
    """What one audit entry served of ``dataset_id`` (to ``person``'s data, when given); None if nothing."""
    if action in ("beacon.query", "mme.match"):  # both name the people of each dataset an answer was about
        return _beacon(ROUTES[action], resource, details, dataset_id, person)
    if details.get("dataset") != dataset_id:
        return None
    object_id = resource.removeprefix("objects/")
    grants = tuple(str(g) for g in details.get("grants") or ())
    if person is not None:
        if object_id not in person.files:
            return None
        if "withheld" in details:  # entries of what was served name whom it left out
            if person.pseudonym in details["withheld"]:
                return None
        elif grants and all(g in person.excluded_from for g in grants):  # DRS decisions: as the grants said
            return None
    size = 0
    if action == "data.read" and details.get("method") != "HEAD":
        size = int(details.get("end", 0)) - int(details.get("start", 0))
    elif action == "htsget.ticket":
        size = int(details.get("inline_bytes", 0))
    return _Served(ROUTES[action], object_id, size, grants=grants)


def _beacon(
    route: str, resource: str, details: Mapping[str, Any], dataset_id: str, person: _Person | None
) -> _Served | None:
    """A Beacon (or matchmaking) answer's part about ``dataset_id``: its records or count, if it covered ``person``."""
    answers = details.get("datasets")
    answer = answers.get(dataset_id) if isinstance(answers, dict) else None
    if not isinstance(answer, dict):
        return None
    if person is not None and not person.numbers & set(decode_people(str(answer.get("people", "")))):
        return None
    records = int(answer.get("records", 0))
    return _Served(
        route,
        resource,
        records=records,
        counts=0 if records else 1,
        grants=tuple(str(g) for g in answer.get("grants") or ()),
    )
