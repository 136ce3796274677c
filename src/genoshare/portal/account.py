"""Signing in and out, and choosing the language.

Researchers and committee members sign in with a GA4GH passport: through the node's passport broker
(OpenID Connect, ``oidc``) or, as a fallback, by pasting a passport. Stewards sign in the same way; their
role comes from the node's configuration (``genoshare.access.roles``), never from the passport.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from genoshare.errors import GenoshareError
from genoshare.portal import i18n
from genoshare.portal.sessions import PASSPORT
from genoshare.portal.web import (
    PREFIX,
    NavItem,
    ViewerDep,
    current_session,
    end_session,
    ensure_session,
    flash,
    local_path,
    portal_of,
    portal_router,
    redirect,
    render,
    start_session,
    t,
)

router = portal_router()
NAV: list[NavItem] = []
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


@router.post("/signout")
def sign_out(request: Request) -> RedirectResponse:
    end_session(request)
    flash(request, t(request, "You are signed out."), "success")
    return redirect(f"{PREFIX}/")


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
