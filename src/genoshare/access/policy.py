"""The access decision. Every API calls ``AccessPolicy``; none decides on its own.

Rules (DESIGN.md): public datasets are open to anyone at record level; registered datasets need a
ResearcherStatus visa for records; controlled datasets need a ControlledAccessGrants visa naming the
dataset for records, and give counts to registered researchers and a yes/no to everybody else.
Each decision that gates data is written to the audit log with its reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from genoshare.access.granularity import AccessLevel, Granularity
from genoshare.access.passports import Identity, Visa
from genoshare.audit import AuditLog, Entry
from genoshare.errors import PermissionDenied, Unauthenticated
from genoshare.store.models import Dataset

RESEARCHER_STATUS = "ResearcherStatus"
CONTROLLED_ACCESS_GRANTS = "ControlledAccessGrants"
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Decision:
    dataset_id: str
    granularity: Granularity
    reason: str
    #: The ids (jti) of the grant visas the decision relied on; tickets carry them for revocation checks.
    grants: tuple[str, ...] = ()


class AccessPolicy:
    def __init__(self, audit: AuditLog, public_url: str) -> None:
        self.audit = audit
        self.public_url = public_url

    def grant_values(self, dataset_id: str) -> set[str]:
        """Visa values that name this dataset: its id or its URL on this node."""
        return {dataset_id, f"{self.public_url}/datasets/{dataset_id}"}

    def _grants_for(self, identity: Identity, dataset_id: str) -> list[Visa]:
        names = self.grant_values(dataset_id)
        return [visa for visa in identity.visas_of_type(CONTROLLED_ACCESS_GRANTS) if visa.value in names]

    def granularity(self, identity: Identity | None, dataset: Dataset) -> Decision:
        """The most a caller may see of ``dataset``; pure, no audit."""
        level = dataset.access_level
        if level == AccessLevel.PUBLIC:
            return Decision(dataset.id, Granularity.RECORD, "public dataset")
        if identity is None:
            return Decision(dataset.id, Granularity.BOOLEAN, f"{level} dataset, anonymous caller")
        researcher = bool(identity.visas_of_type(RESEARCHER_STATUS))
        if level == AccessLevel.REGISTERED:
            if researcher:
                return Decision(dataset.id, Granularity.RECORD, "registered dataset, ResearcherStatus visa")
            return Decision(dataset.id, Granularity.BOOLEAN, "registered dataset, no ResearcherStatus visa")
        grants = self._grants_for(identity, dataset.id)
        if grants:
            return Decision(
                dataset.id,
                Granularity.RECORD,
                "ControlledAccessGrants visa for this dataset",
                tuple(visa.jti for visa in grants),
            )
        if researcher:
            return Decision(dataset.id, Granularity.COUNT, "controlled dataset, ResearcherStatus visa without grant")
        return Decision(dataset.id, Granularity.BOOLEAN, "controlled dataset, no grant")

    def require(
        self, identity: Identity | None, dataset: Dataset, needed: Granularity, *, action: str, resource: str
    ) -> Decision:
        """Allow or raise (401 without credentials, 403 with insufficient ones); audited either way."""
        decision = self.granularity(identity, dataset)
        allowed = decision.granularity >= needed
        self.audit.record(
            Entry(
                actor=identity.actor if identity else ANONYMOUS,
                action=action,
                resource=resource,
                decision="permit" if allowed else "deny",
                reason=decision.reason,
                details={"dataset": dataset.id, "granularity": decision.granularity.name.lower()},
            )
        )
        if allowed:
            return decision
        if identity is None:
            raise Unauthenticated(f"dataset {dataset.id} is {dataset.access_level}: send a GA4GH passport")
        raise PermissionDenied(f"access to dataset {dataset.id} denied: {decision.reason}")

    def decisions(self, identity: Identity | None, datasets: Iterable[Dataset]) -> list[Decision]:
        return [self.granularity(identity, dataset) for dataset in datasets]
