"""Signing in and out, and choosing the language.

Researchers and committee members sign in with a GA4GH passport: through the node's passport broker
(OpenID Connect, ``oidc``) or, as a fallback, by pasting a passport. Stewards sign in the same way; their
role comes from the node's configuration (``genoshare.access.roles``), never from the passport.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Form, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from genoshare.errors import GenoshareError, NotFound, Unauthenticated
from genoshare.portal import i18n
from genoshare.portal.i18n import N_
from genoshare.portal.oidc import Pending
from genoshare.portal.sessions import PASSPORT
from genoshare.portal.web import (
    COMMITTEE,
    PREFIX,
    RESEARCHER,
    STEWARD,
    NavItem,
    Portal,
    Viewer,
    ViewerDep,
    current_session,
    end_session,
    ensure_session,
    flash,
    keep_signin,
    kept_signin,
    local_path,
    portal_of,
    portal_router,
    redirect,
    render,
    require_role,
    start_session,
    t,
)

router = portal_router()
NAV: list[NavItem] = [NavItem(f"{PREFIX}/account", N_("My sessions"), frozenset({RESEARCHER, COMMITTEE, STEWARD}))]
#: A pasted passport longer than this is not one (the server's header limit bounds bearer tokens alike).
MAX_PASSPORT = 64 * 1024


@router.get("/signin")
def signin_page(request: Request, viewer: ViewerDep, next: str | None = None) -> HTMLResponse:
    portal = portal_of(request)
    return render(
        request,
        "signin.html",
        next=local_path(next),
        broker=portal.settings.portal.oidc_issuer,
    )


@router.post("/signin/passport")
async def signin_with_passport(
    request: Request,
    passport: Annotated[str, Form(max_length=MAX_PASSPORT)],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    portal = portal_of(request)
    token = "".join(passport.split())
    try:
        identity = await run_in_threadpool(portal.verify, token) if token else None
    except GenoshareError as error:
        message = t(request, "This passport was not accepted: %(reason)s", reason=error.message)
        return await run_in_threadpool(_signin_again, request, message, next)
    if identity is None:
        return await run_in_threadpool(_signin_again, request, t(request, "Paste your passport first."), next)
    await run_in_threadpool(sign_in, request, token, identity.actor)
    return redirect(local_path(next))


def _signin_again(request: Request, message: str, next: str) -> HTMLResponse:
    flash(request, message, "error")
    broker = portal_of(request).settings.portal.oidc_issuer
    return render(request, "signin.html", status_code=400, next=local_path(next), broker=broker)


def sign_in(request: Request, token: str, actor: str) -> None:
    """A passport session for ``actor``; the token is kept sealed in it, never in a cookie or a URL."""
    session = start_session(request, PASSPORT, actor)
    session.seal("passport", token)
    flash(request, t(request, "You are signed in."), "success")


@router.get("/signin/oidc")
def signin_with_broker(
    request: Request,
    next: str | None = None,
    login_hint: Annotated[str | None, Query(max_length=200)] = None,
) -> RedirectResponse:
    """Off to the broker; the PKCE verifier, ``state`` and ``nonce`` wait in this browser's sealed cookie.

    ``login_hint`` (OIDC) is passed on: which account the visitor means, e.g. in a link the demo prints.
    """
    portal = portal_of(request)
    if portal.oidc is None:
        raise NotFound(t(request, "This node has no passport broker to sign in with; paste a passport instead."))
    url, pending = portal.oidc.start(callback_url(portal), login_hint)
    keep_signin(request, {**pending.as_dict(), "next": local_path(next)})
    return RedirectResponse(url, status_code=303)


def callback_url(portal: Portal) -> str:
    return f"{portal.settings.public_url}{PREFIX}/signin/callback"


@router.get("/signin/callback")
def signin_callback(
    request: Request,
    state: Annotated[str, Query(max_length=200)] = "",
    code: Annotated[str, Query(max_length=2000)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    """The broker sends the browser back here; the code is exchanged at once and the address left behind."""
    portal = portal_of(request)
    kept = kept_signin(request)
    if portal.oidc is None or not isinstance(kept, dict) or not state:
        raise Unauthenticated(t(request, "This sign-in was not started here, or took too long. Please sign in again."))
    if error or not code:
        flash(
            request, t(request, "The sign-in was cancelled or refused by the broker (%(error)s).", error=error), "error"
        )
        return redirect(f"{PREFIX}/signin")
    pending = Pending(kept["state"], kept["nonce"], kept["verifier"])
    token = portal.oidc.finish(pending, state, code, callback_url(portal))
    identity = portal.verify(token)
    sign_in(request, token, identity.actor)
    return redirect(local_path(kept.get("next")))


@router.post("/signout")
def sign_out(request: Request) -> RedirectResponse:
    end_session(request)
    flash(request, t(request, "You are signed out."), "success")
    return redirect(f"{PREFIX}/")


@router.get("/account")
def account_page(request: Request, viewer: Annotated[Viewer, Depends(require_role())]) -> HTMLResponse:
    """Where a signed-in person sees whether they are signed in elsewhere too, and can end those sessions."""
    assert viewer.session is not None
    others = portal_of(request).sessions.others(viewer.session)
    return render(request, "account.html", others=others)


@router.post("/account/end-others")
def end_other_sessions(request: Request, viewer: Annotated[Viewer, Depends(require_role())]) -> RedirectResponse:
    """A lost laptop, a shared computer: every other session of this account ends now, this one stays."""
    assert viewer.session is not None
    ended = portal_of(request).sessions.revoke_others(viewer.session)
    flash(request, t(request, "Other sessions ended: %(count)s.", count=ended), "success")
    return redirect(f"{PREFIX}/account")


@router.post("/language")
def choose_language(
    request: Request,
    lang: Annotated[str, Form(max_length=16)],
    next: Annotated[str, Form(max_length=2000)] = "",
) -> RedirectResponse:
    if lang in {language.code for language in i18n.available()}:
        session = current_session(request) or ensure_session(request)
        session.set("lang", lang)
    return redirect(local_path(next))
