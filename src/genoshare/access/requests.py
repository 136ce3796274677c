"""Who may submit an access request, see one, and decide one.

A request is submitted by a registered researcher (a ResearcherStatus visa that the node's passport policy
accepted). It is seen by its requester, by the committees of the datasets it names, and by stewards;
anyone else is told it does not exist, so that request ids reveal nothing. It is decided (approved,
rejected, revoked) by the committees of all the datasets it names, or by a steward.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select

from genoshare.access.passports import RESEARCHER_STATUS, Identity
from genoshare.access.roles import Caller, Roles
from genoshare.errors import NotFound, PermissionDenied
from genoshare.store.db import Database
from genoshare.store.models import AccessRequest


class RequestAccess:
    def __init__(self, database: Database, roles: Roles) -> None:
        self.database = database
        self.roles = roles

    @staticmethod
    def require_submitter(identity: Identity) -> None:
        """Only registered researchers ask for controlled access: committees decide on who a person is."""
        if not identity.visas_of_type(RESEARCHER_STATUS):
            raise PermissionDenied("access requests need a passport with a ResearcherStatus visa")

    def visible(self, caller: Caller, status: str | None = None) -> list[AccessRequest]:
        """The requests the caller may see, oldest first: their own, their committees', all for a steward."""
        query = select(AccessRequest).order_by(AccessRequest.created_at)
        if status is not None:
            query = query.where(AccessRequest.status == status)
        if self.roles.is_steward(caller):
            with self.database.sessions() as session:
                return list(session.scalars(query))
        committees = self.roles.committees_of(caller)
        with self.database.sessions() as session:
            if not committees:
                return list(session.scalars(query.where(AccessRequest.requester == caller.actor)))
            # The datasets are a JSON list, which SQLite and PostgreSQL search differently: the ids and
            # datasets of the candidates are read first, then only the rows the caller may see.
            candidates = select(AccessRequest.id, AccessRequest.requester, AccessRequest.datasets)
            if status is not None:
                candidates = candidates.where(AccessRequest.status == status)
            ids = [
                request_id
                for request_id, requester, datasets in session.execute(candidates)
                if requester == caller.actor or committees.intersection(datasets or ())
            ]
            return list(session.scalars(query.where(AccessRequest.id.in_(ids)))) if ids else []

    def visible_one(self, caller: Caller, request_id: str) -> AccessRequest:
        """One request, if the caller may see it; ``NotFound`` alike for a missing one and another's."""
        with self.database.sessions() as session:
            request = session.get(AccessRequest, request_id)
        if request is None or not self.may_see(caller, request):
            raise NotFound(f"no access request {request_id!r} visible to you")
        return request

    def may_see(self, caller: Caller, request: AccessRequest) -> bool:
        return request.requester == caller.actor or self.roles.on_any_committee(caller, request.datasets)

    def require_decider(self, caller: Caller, dataset_ids: Sequence[str]) -> None:
        """A request is decided by the committees of every dataset it names (or a steward)."""
        self.roles.require_committee(caller, dataset_ids)
