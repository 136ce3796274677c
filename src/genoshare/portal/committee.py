"""The access committee's inbox: requests for their datasets, explained, decided one dataset at a time.

A member sees the requests that name a dataset of their committee, with the DUO matcher's explanation
per consent code, who asks (identity and affiliation from the passport, declared country and sector),
the project, the accepted data access agreement and the attached documents. They approve a dataset with
an expiry and a note or conditions, reject it with a reason, or revoke an approval; whether they may is
decided by ``genoshare.access`` when they do (``AccessRequests.decide_dataset``), never by this page.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from genoshare.errors import InvalidInput
from genoshare.governance.requests import DEFAULT_GRANT_DAYS, dataset_state
from genoshare.portal.i18n import N_
from genoshare.portal.web import (
    COMMITTEE,
    PREFIX,
    STEWARD,
    NavItem,
    Viewer,
    flash,
    portal_of,
    portal_router,
    redirect,
    render,
    require_role,
    t,
)
from genoshare.store.models import AccessRequest, Dataset

router = portal_router()
NAV: list[NavItem] = [NavItem(f"{PREFIX}/committee", N_("Committee inbox"), frozenset({COMMITTEE, STEWARD}))]
CommitteeDep = Annotated[Viewer, Depends(require_role(COMMITTEE, STEWARD))]

DECISIONS = {"approve": N_("Approved"), "reject": N_("Rejected"), "revoke": N_("Revoked")}
STATES = {
    "pending": N_("Waiting for a decision"),
    "approved": N_("Approved"),
    "rejected": N_("Rejected"),
    "revoked": N_("Revoked"),
}
OUTCOMES = {"PERMIT": N_("Consent permits"), "DENY": N_("Consent forbids"), "REVIEW": N_("Needs your review")}


@dataclass(frozen=True)
class Row:
    """A request in the inbox, with the state of each of the viewer's datasets in it."""

    request: AccessRequest
    mine: list[tuple[str, str]]

    @property
    def waiting(self) -> bool:
        return any(state == "pending" for _, state in self.mine)


def _mine(viewer: Viewer, request: AccessRequest) -> list[tuple[str, str]]:
    every = "steward" in viewer.roles
    return [(d, dataset_state(request, d)) for d in request.datasets if every or d in viewer.committees]


@router.get("/committee")
def inbox(request: Request, viewer: CommitteeDep) -> HTMLResponse:
    portal = portal_of(request)
    assert viewer.identity is not None
    rows = [
        Row(r, mine) for r in portal.services.access_requests.visible_to(viewer.identity) if (mine := _mine(viewer, r))
    ]
    waiting = [row for row in rows if row.waiting]
    decided = sorted(
        (row for row in rows if not row.waiting),
        key=lambda row: row.request.decided_at or row.request.created_at,
        reverse=True,
    )
    return render(request, "committee/inbox.html", waiting=waiting, decided=decided, states=STATES)


@router.get("/committee/requests/{request_id}")
def request_page(request: Request, request_id: str, viewer: CommitteeDep) -> HTMLResponse:
    portal = portal_of(request)
    assert viewer.identity is not None
    item = portal.services.access_requests.get(request_id, viewer.identity)
    datasets: dict[str, Dataset] = {d: portal.services.datasets.get(d) for d in item.datasets}
    documents = portal.services.documents.list(viewer.identity, request_id)
    return render(
        request,
        "committee/request.html",
        item=item,
        datasets=datasets,
        mine=dict(_mine(viewer, item)),
        documents=documents,
        states=STATES,
        outcomes=OUTCOMES,
        default_expiry=(dt.date.today() + dt.timedelta(days=DEFAULT_GRANT_DAYS)).isoformat(),
        tomorrow=(dt.date.today() + dt.timedelta(days=1)).isoformat(),
    )


@router.post("/committee/requests/{request_id}/decide")
def decide(
    request: Request,
    request_id: str,
    viewer: CommitteeDep,
    dataset: Annotated[str, Form(max_length=64)],
    decision: Annotated[str, Form(max_length=16)],
    note: Annotated[str, Form(max_length=4000)] = "",
    expires: Annotated[str, Form(max_length=10)] = "",
) -> RedirectResponse:
    portal = portal_of(request)
    assert viewer.identity is not None
    try:
        expires_on = dt.date.fromisoformat(expires) if expires else None
    except ValueError:
        raise InvalidInput(t(request, "Give the last day of access as a date.")) from None
    portal.services.access_requests.decide_dataset(request_id, dataset, viewer.identity, decision, note, expires_on)
    label = DECISIONS.get(decision, decision)
    flash(request, t(request, "%(decision)s: %(dataset)s.", decision=t(request, label), dataset=dataset), "success")
    return redirect(f"{PREFIX}/committee/requests/{request_id}")
