"""Participants' pages: what their consent allows, who used their data, and narrowing, widening or withdrawing it.

A participant has no account: the steward hands them a personal link (``genoshare consent link``),
``{public_url}/consent/{secret}``. Opening it trades the secret for a participant session and redirects at
once, so the secret stays neither in the address bar nor in the browser's history, and the server's access
log never records it (``ConsentLinkFilter``). The session keeps only the secret's hash; every page asks
``genoshare.access`` (``ConsentTokens.people_of``) whose records it opens, so a link the steward replaces
stops opening anything at once. One link reaches the person's records in every dataset that holds them.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from starlette.convertors import StringConvertor, register_url_convertor

from genoshare.access.consent_tokens import ConsentTokens, token_hash
from genoshare.access.matchmaking import MatchmakingConsent, matchmaking_consent
from genoshare.errors import Conflict, GenoshareError, InvalidInput, PermissionDenied
from genoshare.governance.usage import Route, Use
from genoshare.node import Node, Services
from genoshare.portal.i18n import N_
from genoshare.portal.sessions import PARTICIPANT as PARTICIPANT_SESSION
from genoshare.portal.web import (
    PARTICIPANT,
    PREFIX,
    NavItem,
    PortalRoute,
    Viewer,
    current_session,
    end_session,
    flash,
    portal_router,
    redirect,
    render,
    require_role,
    start_session,
    t,
)
from genoshare.store.models import Dataset, Participant, utcnow

router = portal_router()
#: The consent link itself lives outside ``/portal``: ``{public_url}/consent/{secret}``.
links = APIRouter(route_class=PortalRoute, include_in_schema=False)
NAV: list[NavItem] = [NavItem(f"{PREFIX}/consent", N_("My consent"), frozenset({PARTICIPANT}))]
HOME = f"{PREFIX}/consent"
ParticipantDep = Annotated[Viewer, Depends(require_role(PARTICIPANT))]

#: The narrowings a participant may choose, in plain words; each is a DUO modifier the access policy applies.
NARROWINGS = {
    "NCU": N_("Not for commercial use: companies may not use my data to make products or profit."),
    "NPU": N_("Only not-for-profit organisations, such as universities and public hospitals, may use my data."),
    "NPOA": N_("My data may not be used to study where populations or my ancestors came from."),
}

#: A use's purpose in words: its primary DUO purpose, and what else it declared.
PURPOSES = {
    "GRU": N_("general research"),
    "HMB": N_("health or medical research"),
    "DS": N_("research on a disease"),
    "POA": N_("research on population origins or ancestry"),
}
FLAGS = {
    "for profit": N_("by a for-profit organisation"),
    "commercial": N_("for commercial use"),
    "methods development": N_("to develop research methods"),
    "population ancestry": N_("including population ancestry"),
}


def purpose_words(text: str, translate: Callable[[str], str]) -> str:
    """``"DS MONDO:0005148 commercial"`` (``UsageReports``' text) as ``research on a disease (MONDO:0005148), ...``."""
    primary, _, rest = text.partition(" ")
    diseases = [word for word in rest.split() if ":" in word]
    flags = [flag.strip() for flag in " ".join(w for w in rest.split() if ":" not in w).split(",") if flag.strip()]
    words = translate(PURPOSES[primary]) if primary in PURPOSES else primary
    if diseases:
        words += f" ({', '.join(diseases)})"
    return "; ".join([words, *(translate(FLAGS.get(flag, flag)) for flag in flags)])


def size_words(count: int) -> str:
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def route_words(name: str, route: Route, translate: Callable[[str], str]) -> str:
    """What one route of a use did with the participant's data, in a sentence."""
    if name == "matchmaking":
        return translate(N_("Compared with a patient in %(count)d rare-disease matchmaking search(es)")) % {
            "count": route.requests
        }
    if name == "beacon":
        if route.records:
            return translate(N_("Shown as a record in %(count)d search answer(s)")) % {"count": route.requests}
        return translate(N_("Counted in %(count)d search answer(s)")) % {"count": route.requests}
    if route.bytes_served:
        return translate(N_("Received %(size)s of files holding your data, in %(count)d request(s)")) % {
            "size": size_words(route.bytes_served),
            "count": route.requests,
        }
    return translate(N_("Looked up files holding your data %(count)d time(s)")) % {"count": route.requests}


#: An access log line's consent-link path, whatever follows it (a query, the HTTP version).
_LINK_PATH = re.compile(r"/consent/[A-Za-z0-9_\-%.~]{16,}")
REDACTED = "/consent/[link]"


class ConsentLinkFilter(logging.Filter):
    """Rewrites the secret of a consent link out of every log record (uvicorn's access log names the path)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_LINK_PATH.sub(REDACTED, arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str) and "/consent/" in record.msg:
            record.msg = _LINK_PATH.sub(REDACTED, record.msg)
        return True


def install_log_filter() -> None:
    """Keep consent links out of the server's logs; safe to call more than once."""
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn", "genoshare"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, ConsentLinkFilter) for f in logger.filters):
            logger.addFilter(ConsentLinkFilter())


def _node(request: Request) -> Node:
    node: Node = request.app.state.node
    return node


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _tokens(request: Request) -> ConsentTokens:
    return _node(request).consent_tokens


# -- the link ------------------------------------------------------------------------------------------


class SecretConvertor(StringConvertor):
    """A link's secret (``secrets.token_urlsafe``: 43 characters), never a word such as ``narrow``.

    Without it ``GET /consent/{secret}`` also matched the API's ``/consent/narrow``, ``/widen``, ``/withdraw``
    and ``/matchmaking``: a GET there opened no link, and any other method got a 405 offering GET.
    """

    regex = "[A-Za-z0-9_-]{16,}"


register_url_convertor("consent_secret", SecretConvertor())


@links.get("/consent/{secret:consent_secret}")
def open_link(request: Request, secret: str) -> RedirectResponse:
    """Trade the link's secret for a session, then leave its address at once (303 to the consent page)."""
    try:
        people = _tokens(request).people(secret)
    except GenoshareError:
        end_session(request)
        return _leave(f"{PREFIX}/consent/invalid")
    first = people[0]
    start_session(
        request,
        PARTICIPANT_SESSION,
        f"participant:{first.dataset_id}/{first.pseudonym}",
        {"link": token_hash(secret)},
    )
    return _leave(HOME)


def _leave(path: str) -> RedirectResponse:
    """A redirect from the link's address that names it to no one (no Referer, no cache)."""
    response = redirect(path)
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@router.get("/consent/invalid")
def invalid_link(request: Request) -> HTMLResponse:
    return render(request, "consent/invalid.html", status_code=401)


# -- what the participant sees ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One dataset holding the participant's data, as their page shows it."""

    participant: Participant
    dataset: Dataset
    uses: list[Use]

    @property
    def narrowable(self) -> list[tuple[str, str]]:
        """Narrowings still open to them: not chosen yet, and not already among the dataset's own codes."""
        taken = {*(self.participant.consent_restrictions or ()), *(c.split(":")[0] for c in self.dataset.duo_codes)}
        return [(code, text) for code, text in NARROWINGS.items() if code not in taken]

    @property
    def active(self) -> bool:
        return self.participant.consent_status == "active"

    @property
    def matchmaking(self) -> MatchmakingConsent:
        """Whether matchmaking may show them now, decided as every match request decides it."""
        person = self.participant
        return matchmaking_consent(person.consent_status, person.matchmaking, self.dataset.duo_codes)


def people(request: Request) -> list[Participant]:
    """The records this participant session opens, asked afresh of ``access`` at every request."""
    session = current_session(request)
    link = session.data.get("link") if session is not None else None
    found = _tokens(request).people_of(link) if isinstance(link, str) else []
    if not found:
        end_session(request)
        raise PermissionDenied(t(request, "This consent link is no longer valid. Ask for a new one."))
    return found


def records(request: Request) -> list[Record]:
    found = people(request)
    services = _services(request)
    with _node(request).database.sessions() as db:
        datasets = {d.id: d for d in db.scalars(select(Dataset).where(Dataset.id.in_([p.dataset_id for p in found])))}
    return [
        Record(person, datasets[person.dataset_id], services.usage.of(person.dataset_id, person.pseudonym))
        for person in found
    ]


def _one(request: Request, participant_id: int) -> Participant:
    """One of this session's own records; another person's id is refused (the session never opened it)."""
    for person in people(request):
        if person.id == participant_id:
            return person
    raise PermissionDenied(t(request, "This record is not yours."))


def _choosing(request: Request, participant_id: int) -> Participant:
    """One of this session's records whose consent is still given: after withdrawal no choice is left to make."""
    person = _one(request, participant_id)
    if person.consent_status != "active":
        raise Conflict(
            t(
                request,
                "You have withdrawn your consent for this dataset: your data is no longer used, so there is "
                "no choice left to change. To take part again, contact the dataset's steward.",
            )
        )
    return person


def _actor(person: Participant) -> str:
    return f"participant:{person.pseudonym}"


@router.get("/consent")
def consent_page(request: Request, viewer: ParticipantDep) -> HTMLResponse:
    return render(
        request,
        "consent/overview.html",
        records=records(request),
        purpose_words=lambda text: purpose_words(text, lambda m: t(request, m)),
        route_words=lambda name, route: route_words(name, route, lambda m: t(request, m)),
    )


@router.post("/consent/narrow")
def narrow(
    request: Request,
    viewer: ParticipantDep,
    participant: Annotated[int, Form()],
    code: Annotated[str, Form(max_length=16)],
) -> RedirectResponse:
    if code not in NARROWINGS:
        raise InvalidInput(t(request, "Choose one of the options shown."))
    person = _choosing(request, participant)
    _services(request).consent.narrow(person, [code], _actor(person))
    flash(request, t(request, "Your choice is saved. It applies from now on."), "success")
    return redirect(HOME)


@router.post("/consent/widen")
def widen(
    request: Request,
    viewer: ParticipantDep,
    participant: Annotated[int, Form()],
    code: Annotated[str, Form(max_length=16)],
) -> RedirectResponse:
    person = _choosing(request, participant)
    _services(request).consent.widen(person, [code], _actor(person))
    flash(request, t(request, "Your choice is saved. It applies from now on."), "success")
    return redirect(HOME)


@router.post("/consent/matchmaking")
def matchmaking(
    request: Request,
    viewer: ParticipantDep,
    participant: Annotated[int, Form()],
    allow: Annotated[str, Form(max_length=8)],
) -> RedirectResponse:
    """Say yes or no to rare-disease matchmaking (``ConsentService.set_matchmaking``, as the API's route)."""
    if allow not in ("yes", "no"):
        raise InvalidInput(t(request, "Choose one of the options shown."))
    person = _choosing(request, participant)
    _services(request).consent.set_matchmaking(person, allow == "yes", _actor(person))
    flash(request, t(request, "Your choice is saved. It applies from now on."), "success")
    return redirect(HOME)


@router.get("/consent/withdraw")
def withdraw_page(request: Request, viewer: ParticipantDep) -> HTMLResponse:
    active = [record for record in records(request) if record.active]
    return render(request, "consent/withdraw.html", records=active)


@router.post("/consent/withdraw")
def withdraw(
    request: Request,
    viewer: ParticipantDep,
    participant: Annotated[list[int], Form()],
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> RedirectResponse:
    if confirm != "yes":
        flash(request, t(request, "Tick the box to confirm that you want to withdraw."), "error")
        return redirect(f"{HOME}/withdraw")
    chosen = [_one(request, participant_id) for participant_id in dict.fromkeys(participant)]
    consent = _services(request).consent
    with _node(request).database.sessions() as db:
        titles = {row.id: row.title for row in db.execute(select(Dataset.id, Dataset.title))}
    withdrawn: list[dict[str, Any]] = []
    for person in chosen:
        if person.consent_status != "active":
            continue
        result = consent.withdraw(person, _actor(person))
        withdrawn.append(
            {
                "dataset": person.dataset_id,
                "title": titles.get(person.dataset_id, person.dataset_id),
                "pseudonym": person.pseudonym,
                "unavailable": len(result.unavailable),
                "rederiving": len(result.rederiving),
            }
        )
    session = current_session(request)
    if withdrawn and session is not None:
        receipt = {"id": str(uuid.uuid4()), "at": utcnow().isoformat(), "datasets": withdrawn}
        session.set("receipts", [*session.data.get("receipts", []), receipt])
        return redirect(f"{HOME}/receipts/{receipt['id']}")
    return redirect(HOME)


def _receipt(request: Request, receipt_id: str) -> dict[str, Any]:
    people(request)  # the link still opens the records
    session = current_session(request)
    for receipt in session.data.get("receipts", []) if session is not None else []:
        if receipt["id"] == receipt_id:
            return {**receipt, "at": dt.datetime.fromisoformat(receipt["at"])}
    raise PermissionDenied(t(request, "There is no such receipt in this session."))


@router.get("/consent/receipts/{receipt_id}")
def receipt_page(request: Request, viewer: ParticipantDep, receipt_id: str) -> HTMLResponse:
    return render(request, "consent/receipt.html", receipt=_receipt(request, receipt_id))


@router.get("/consent/receipts/{receipt_id}/download")
def receipt_download(request: Request, viewer: ParticipantDep, receipt_id: str) -> Response:
    """The receipt as one self-contained HTML file to keep (no stylesheet, script or link back needed)."""
    node_name = _node(request).settings.node_name
    page = render(request, "consent/receipt_file.html", receipt=_receipt(request, receipt_id), node_name=node_name)
    day = _receipt(request, receipt_id)["at"].strftime("%Y-%m-%d")
    page.headers["Content-Disposition"] = f'attachment; filename="consent-withdrawal-receipt-{day}.html"'
    return page
