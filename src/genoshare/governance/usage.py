"""Who used my data: who accessed a dataset or a participant's files, when, and for which purpose.

Built from the audit log; each access is tied to the approved request whose grant it relied on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from genoshare.node import Node
from genoshare.store.models import AccessRequest, Grant, ObjectParticipant, Participant

#: Audit actions that mean data or metadata left the node for someone.
ACCESS_ACTIONS = ("drs.get", "drs.access", "data.read", "htsget.ticket", "beacon.query")


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
        }


def _purpose_text(purpose: dict[str, Any]) -> str:
    diseases = " ".join(purpose.get("diseases") or ())
    flags = [
        name.replace("_", " ")
        for name in ("for_profit", "commercial", "methods_development", "population_ancestry")
        if purpose.get(name)
    ]
    return " ".join(part for part in (str(purpose.get("primary", "")), diseases, ", ".join(flags)) if part)


def usage(node: Node, dataset_id: str, participant: str | None = None) -> list[Use]:
    """Uses of ``dataset_id`` (or only of the files holding ``participant``), busiest first."""
    with node.database.sessions() as session:
        files: set[str] | None = None
        if participant is not None:
            files = set(
                session.scalars(
                    select(ObjectParticipant.object_id)
                    .join(Participant, Participant.id == ObjectParticipant.participant_id)
                    .where(Participant.dataset_id == dataset_id, Participant.pseudonym == participant)
                )
            )
        by_grant = {
            grant_id: request
            for grant_id, request in session.execute(
                select(Grant.id, AccessRequest)
                .join(AccessRequest, Grant.request_id == AccessRequest.id)
                .where(Grant.dataset_id == dataset_id)
            )
        }
    uses: dict[str, Use] = {}
    for event in node.audit.entries():
        if event.action not in ACCESS_ACTIONS or event.decision != "permit":
            continue
        if (event.details or {}).get("dataset") != dataset_id:
            continue
        object_id = event.resource.removeprefix("objects/")
        if files is not None and object_id not in files:
            continue
        use = uses.setdefault(event.actor, Use(event.actor, event.at, event.at))
        use.first, use.last = min(use.first, event.at), max(use.last, event.at)
        use.requests += 1
        use.resources.add(object_id)
        details = event.details or {}
        if event.action == "data.read":
            use.bytes_served += int(details.get("end", 0)) - int(details.get("start", 0))
        for grant_id in details.get("grants") or ():
            request = by_grant.get(grant_id)
            if request is not None:
                use.projects.add(f"{request.project_title} ({request.institution})")
                use.purposes.add(_purpose_text(request.purpose))
    return sorted(uses.values(), key=lambda u: (-u.requests, u.actor))
