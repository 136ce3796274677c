"""What every portal page shares: sessions, who is signed in, CSRF, security headers, rendering, messages.

Page modules build their routes with ``portal_router()``; its route class does for every route what a page
must never forget: it refuses a state-changing request without the session's CSRF token (or from another
origin), turns errors into an HTML page in the visitor's language, writes the session back, sets its
cookie (HttpOnly, SameSite=Lax, Secure over https) and adds the security headers, a strict
Content-Security-Policy first: no inline script or style, nothing from elsewhere.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote, urlsplit

from babel.dates import format_datetime
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from fastapi import APIRouter, Depends, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, pass_context, select_autoescape
from jinja2.runtime import Context
from starlette.concurrency import run_in_threadpool

from genoshare.access.passports import Identity, Visa
from genoshare.access.roles import Roles
from genoshare.audit.denials import ANONYMOUS, DenialLog
from genoshare.errors import GenoshareError, PermissionDenied
from genoshare.portal import duo_text, i18n
from genoshare.portal.oidc import OidcClient
from genoshare.portal.sessions import PASSPORT, VISITOR, Session, SessionStore
from genoshare.settings import Settings
from genoshare.store.models import utcnow

if TYPE_CHECKING:
    from genoshare.node import Services

log = logging.getLogger("genoshare.portal")
#: How long a researcher's node-signed grants are reused before they are signed again.
GRANTS_CACHE_SECONDS = 300

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
PREFIX = "/portal"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: How long a sign-in at the broker may take before the visitor starts again.
SIGNIN_SECONDS = 600
CSRF_FIELD = "csrf_token"

#: Roles a page may require (``require_role``); a signed-in passport holder is always a researcher.
RESEARCHER = "researcher"
COMMITTEE = "committee"
STEWARD = "steward"
PARTICIPANT = "participant"


@dataclass(frozen=True)
class NavItem:
    """A link of the site navigation, shown to visitors holding one of ``roles`` (to everyone if empty)."""

    path: str
    label: str
    roles: frozenset[str] = frozenset()


@dataclass
class Viewer:
    """Who is looking at a page: their session, passport identity (if any) and roles at this node."""

    session: Session | None
    identity: Identity | None = None
    roles: frozenset[str] = frozenset()
    #: Datasets on whose access committee the viewer sits.
    committees: frozenset[str] = frozenset()

    @property
    def signed_in(self) -> bool:
        return bool(self.roles)

    @property
    def actor(self) -> str:
        return self.session.actor if self.session is not None else ""

    def has(self, *roles: str) -> bool:
        return bool(self.roles.intersection(roles))


@dataclass
class Portal:
    """The portal's shared parts, built once by ``install_portal`` and kept in ``app.state.portal``."""

    settings: Settings
    sessions: SessionStore
    roles: Roles
    #: The node's services, the same instances the APIs use (``node.build_services``).
    services: Services
    #: Verifies a passport (the node's ``PassportVerifier``): ``remembered`` first, then ``verify``.
    remembered: Callable[[str], Identity | None]
    verify: Callable[[str], Identity]
    #: The passport broker people sign in at (OpenID Connect), if one is configured.
    oidc: OidcClient | None = None
    nav: list[NavItem] = field(default_factory=list)
    #: Static file name -> its URL with a content hash, so browsers may cache it for good.
    static_urls: dict[str, str] = field(default_factory=dict)
    #: The node's key for a visitor's form token (``visitor_csrf``), the same in every serve process.
    visitor_key: bytes = b""
    _granted: dict[tuple[str, tuple[str, ...]], tuple[float, tuple[Visa, ...]]] = field(default_factory=dict)

    @property
    def secure(self) -> bool:
        return self.settings.public_url.startswith("https://")

    @property
    def cookie_name(self) -> str:
        # The __Host- prefix makes browsers refuse the cookie unless Secure, host-only and Path=/.
        return "__Host-genoshare" if self.secure else "genoshare_session"

    @property
    def signin_cookie_name(self) -> str:
        """The cookie that holds a sign-in begun at the broker (sealed), until the broker sends the visitor back."""
        return "__Host-genoshare-signin" if self.secure else "genoshare_signin"

    @property
    def visitor_cookie_name(self) -> str:
        """The cookie of a visitor without a session: the random value their forms' token is signed over."""
        return "__Host-genoshare-visitor" if self.secure else "genoshare_visitor"

    @cached_property
    def environments(self) -> dict[str, Environment]:
        return {language.code: self._environment(language.code) for language in i18n.available()}

    def with_node_grants(self, identity: Identity) -> Identity:
        """``identity`` with the grants this node's committees gave it, as visas the node signed.

        A researcher signs in with the passport of their own broker, which knows nothing of this node's
        approvals; the node-signed passport that carries them (``/governance/passport``) is added here, so
        that every page answers with the access the researcher has, without them swapping passports.
        """
        grants = self.services.access_requests.active_grants(identity.actor)
        if not grants:
            return identity
        key = (identity.actor, tuple(sorted(grant.id for grant in grants)))
        now = time.time()
        cached = self._granted.get(key)
        if cached is None or cached[0] <= now:
            signed = self.services.access_requests.passport(identity)["passport"]
            granted = self.verify(signed)
            # Re-made well before the node-signed passport (an hour at most) expires.
            cached = (now + GRANTS_CACHE_SECONDS, granted.visas)
            self._granted[key] = cached
        return replace(identity, visas=(*identity.visas, *cached[1]))

    def _environment(self, code: str) -> Environment:
        environment = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True),
            extensions=["jinja2.ext.i18n"],
            trim_blocks=True,
            lstrip_blocks=True,
        )
        environment.install_gettext_translations(i18n.translations(code), newstyle=True)  # type: ignore[attr-defined]
        environment.filters["duo"] = _duo_filter
        environment.filters["when"] = lambda value: format_datetime(value, "medium", locale=code) if value else ""
        environment.globals["static"] = lambda name: self.static_urls.get(name, f"{PREFIX}/static/{name}")
        return environment


@pass_context
def _duo_filter(context: Context, code: str) -> str:
    # The i18n extension's new-style gettext takes the template context first.
    translate: Callable[[Context, str], str] = context.environment.globals["gettext"]  # type: ignore[assignment]
    return duo_text.explain(code, lambda message: str(translate(context, message)))


# -- the request's portal state -----------------------------------------------------------------------


def portal_of(request: Request) -> Portal:
    portal: Portal = request.app.state.portal
    return portal


def _state(request: Request) -> dict[str, Any]:
    """Per-request portal state: the session (loaded once), whether it was looked up, the viewer."""
    state: dict[str, Any] | None = getattr(request.state, "portal", None)
    if state is None:
        state = {}
        request.state.portal = state
    return state


async def load_session(request: Request) -> Session | None:
    state = _state(request)
    if "session" not in state:
        portal = portal_of(request)
        state["session"] = await run_in_threadpool(portal.sessions.get, request.cookies.get(portal.cookie_name))
    session: Session | None = state["session"]
    return session


def current_session(request: Request) -> Session | None:
    """The session ``load_session`` found (route handlers run after it), or one made later in this request."""
    session: Session | None = _state(request).get("session")
    return session


def ensure_session(request: Request) -> Session:
    """The request's session, a new visitor session if it had none: for what must be kept (a language, a message)."""
    session = current_session(request)
    if session is None:
        session = portal_of(request).sessions.create(VISITOR)
        _state(request)["session"] = session
    return session


def visitor_csrf(request: Request) -> str:
    """The form token of a visitor without a session: stateless, so a crawler's pages cost no database row.

    A signed double submit: the token is an HMAC, under the node's key, of a random value kept in the
    visitor's own HttpOnly cookie (``__Host-`` over https, so no other site or subdomain can plant one). A
    form from elsewhere has neither the cookie's value nor the key to sign another.
    """
    state = _state(request)
    portal = portal_of(request)
    value = state.get("visitor")
    if value is None:
        sent = request.cookies.get(portal.visitor_cookie_name, "")
        if 20 <= len(sent) <= 100 and sent.isascii():
            value = sent
        else:
            value = state["new_visitor"] = secrets.token_urlsafe(32)
        state["visitor"] = value
    return hmac.new(portal.visitor_key, f"portal-visitor\0{value}".encode(), hashlib.sha256).hexdigest()


def csrf_of(request: Request) -> str:
    """The token this request's forms carry: its session's, or a visitor's signed one if it has no session."""
    session = current_session(request)
    return session.csrf_token if session is not None else visitor_csrf(request)


def _signin_sealer(portal: Portal) -> ChaCha20Poly1305:
    return ChaCha20Poly1305(hmac.new(portal.visitor_key, b"portal sign-in cookie", hashlib.sha256).digest())


def keep_signin(request: Request, pending: dict[str, Any]) -> None:
    """Keep a sign-in begun at the broker (PKCE verifier, state, nonce) in a sealed cookie, not a database row.

    Starting a sign-in is a GET (a link): were it a row, every crawl of the link would leave one behind.
    """
    _state(request)["signin"] = {**pending, "until": time.time() + SIGNIN_SECONDS}


def kept_signin(request: Request) -> dict[str, Any] | None:
    """The sign-in this browser began (once: its cookie is cleared), or None if none, expired or forged."""
    portal = portal_of(request)
    _state(request)["signin_taken"] = True
    raw = request.cookies.get(portal.signin_cookie_name, "")
    try:
        blob = base64.urlsafe_b64decode(raw.encode())
        opened = _signin_sealer(portal).decrypt(blob[:12], blob[12:], b"signin")
        kept = json.loads(opened)
    except (InvalidTag, ValueError, binascii.Error):
        return None
    if not isinstance(kept, dict) or not isinstance(kept.get("until"), float | int) or kept["until"] < time.time():
        return None
    return kept


def start_session(request: Request, kind: str, actor: str, data: dict[str, Any] | None = None) -> Session:
    """Sign in: a new session replaces the visitor's (no session fixation); the language is kept."""
    portal = portal_of(request)
    old = current_session(request)
    kept = {key: old.data[key] for key in ("lang",) if old is not None and key in old.data}
    if old is not None:
        portal.sessions.revoke(old)
    session = portal.sessions.create(kind, actor, {**kept, **(data or {})})
    state = _state(request)
    state["session"], state["viewer"] = session, None
    return session


def end_session(request: Request) -> None:
    session = current_session(request)
    if session is not None:
        portal_of(request).sessions.revoke(session)
    state = _state(request)
    state["session"], state["viewer"], state["ended"] = None, None, True


def language(request: Request) -> str:
    session = current_session(request)
    chosen = session.data.get("lang") if session is not None else None
    codes = {language.code for language in i18n.available()}
    if isinstance(chosen, str) and chosen in codes:
        return chosen
    return i18n.negotiate(request.headers.get("accept-language"))


def t(request: Request, message: str, **values: object) -> str:
    """``message`` in the visitor's language, ``%(name)s`` filled from ``values`` (``pybabel extract -k t:2``)."""
    translated = i18n.translations(language(request)).gettext(message)
    return translated % values if values else translated


def flash(request: Request, message: str, kind: str = "info") -> None:
    """A message shown once, on the next page this visitor sees (after a redirect, typically)."""
    session = ensure_session(request)
    session.set("flashes", [*session.data.get("flashes", []), [kind, message]])


# -- who is signed in --------------------------------------------------------------------------------


class SignInRequired(GenoshareError):
    """Raised by ``require_role`` for a visitor: the route class answers with a redirect to sign in."""

    status_code = 401
    code = "InvalidAuthentication"


async def current_viewer(request: Request) -> Viewer:
    """The viewer of this request; a session whose passport no longer verifies is ended here."""
    state = _state(request)
    if state.get("viewer") is not None:
        viewer: Viewer = state["viewer"]
        return viewer
    session = await load_session(request)
    viewer = Viewer(session)
    if session is not None and session.kind == PASSPORT:
        viewer = await run_in_threadpool(_passport_viewer, portal_of(request), session)
        if viewer.identity is None:
            await run_in_threadpool(end_session, request)
            flash(request, t(request, "Your sign-in has expired. Please sign in again."), "warning")
            viewer = Viewer(current_session(request))
    elif session is not None and session.kind != VISITOR:
        viewer = Viewer(session, roles=frozenset({session.kind}))
    state["viewer"] = viewer
    return viewer


def _passport_viewer(portal: Portal, session: Session) -> Viewer:
    token = session.unseal("passport")
    if token is None:
        return Viewer(session)
    identity = portal.remembered(token)
    if identity is None:
        try:
            identity = portal.verify(token)
        except GenoshareError as error:
            log.info("a portal session's passport no longer verifies: %s", error.message)
            return Viewer(session)
    identity = portal.with_node_grants(identity)
    roles = {RESEARCHER}
    committees = frozenset(portal.roles.committees_of(identity))
    if committees:
        roles.add(COMMITTEE)
    if portal.roles.is_steward(identity):
        roles.add(STEWARD)
    return Viewer(session, identity, frozenset(roles), committees)


def require_role(*roles: str) -> Callable[[Request], Awaitable[Viewer]]:
    """A dependency: the viewer, who must be signed in and hold one of ``roles`` (any role if none given)."""

    async def dependency(request: Request) -> Viewer:
        viewer = await current_viewer(request)
        if not viewer.signed_in:
            raise SignInRequired("sign in to see this page")
        if roles and not viewer.has(*roles):
            raise PermissionDenied(t(request, "This page is not open to your account."))
        return viewer

    return dependency


ViewerDep = Annotated[Viewer, Depends(current_viewer)]


# -- rendering ---------------------------------------------------------------------------------------


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """Render ``template`` in the visitor's language with what every page needs (viewer, CSRF, messages)."""
    portal = portal_of(request)
    # No session is made for a page: a visitor's (a crawler's) GETs leave no row (``visitor_csrf``).
    session = current_session(request)
    viewer: Viewer = _state(request).get("viewer") or Viewer(session)
    code = language(request)
    flashes = session.pop("flashes", []) if session is not None else []
    page = portal.environments[code].get_template(template)
    html = page.render(
        request=request,
        viewer=viewer,
        csrf_field=CSRF_FIELD,
        csrf_token=csrf_of(request),
        flashes=flashes,
        lang=code,
        languages=i18n.available(),
        nav=[item for item in portal.nav if not item.roles or viewer.has(*item.roles)],
        path=request.url.path,
        # Behind a proxy's path prefix (``serve --root-path``), links keep it: ``root`` before any site path.
        root=request.scope.get("root_path", ""),
        prefix=request.scope.get("root_path", "") + PREFIX,
        **context,
    )
    return HTMLResponse(html, status_code=status_code)


def redirect(path: str) -> RedirectResponse:
    """After a form: 303, so that reloading the next page does not post the form again."""
    return RedirectResponse(path, status_code=303)


def local_path(target: str | None, default: str = f"{PREFIX}/") -> str:
    """``target`` if it is a path on this site (``/portal/...``), else ``default``: no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


# -- the route class ---------------------------------------------------------------------------------


def security_headers(portal: Portal) -> dict[str, str]:
    policy = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
    headers = {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        # No page's address (a participant's consent link) leaves for another site in a Referer. Not
        # "no-referrer": browsers then send "Origin: null" with forms, and the origin check needs it.
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cross-Origin-Resource-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        # Pages are personal (who is signed in, their requests): no shared or browser cache keeps them.
        "Cache-Control": "no-store",
    }
    if portal.secure:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def _same_origin(request: Request, portal: Portal) -> bool:
    """A browser names the page a form was sent from (``Origin``); it must be this node."""
    origin = request.headers.get("origin")
    if origin is None:
        # Old browsers send none on same-origin POSTs; the CSRF token still has to match.
        return True
    own = {f"{request.url.scheme}://{request.url.netloc}", portal.settings.public_url.rstrip("/")}
    return origin.rstrip("/") in {o.rstrip("/") for o in own}


async def check_csrf(request: Request) -> None:
    """Refuse a state-changing request that does not carry this session's CSRF token from this origin."""
    portal = portal_of(request)
    message = t(request, "This form has expired or did not come from this site. Please go back and try again.")
    if not _same_origin(request, portal):
        raise PermissionDenied(message)
    session = await load_session(request)
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    if not isinstance(sent, str):
        raise PermissionDenied(message)
    if session is not None and hmac.compare_digest(sent, session.csrf_token):
        return
    # A visitor's signed token (a page shown without a session); never enough for a signed-in session.
    if session is not None and session.kind != VISITOR:
        raise PermissionDenied(message)
    if request.cookies.get(portal.visitor_cookie_name) is None or not hmac.compare_digest(sent, visitor_csrf(request)):
        raise PermissionDenied(message)


class PortalRoute(APIRoute):
    """Every portal route: CSRF on unsafe methods, HTML errors, the session written back, security headers."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                await load_session(request)
                if request.method not in SAFE_METHODS:
                    await check_csrf(request)
                response = await handler(request)
            except SignInRequired:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                response = redirect(f"{PREFIX}/signin?next={quote(target, safe='/')}")
            except GenoshareError as error:
                # The error page shows who is signed in, as every page does.
                with contextlib.suppress(GenoshareError):
                    await current_viewer(request)
                await run_in_threadpool(audit_refusal, request, error)
                response = await run_in_threadpool(error_page, request, error.status_code, error.message)
            except RequestValidationError as error:
                problems = "; ".join(f"{_field(e.get('loc', ()))}: {e.get('msg')}" for e in error.errors())
                response = await run_in_threadpool(error_page, request, 400, problems)
            await run_in_threadpool(finish, request, response)
            return response

        return handle


def _field(location: tuple[object, ...]) -> str:
    """``("body", "passport")`` -> ``passport``: the form field a visitor can find on the page."""
    return ".".join(str(part) for part in location[1:]) or "form"


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", status_code=status, status=status, message=message)


def audit_refusal(request: Request, error: GenoshareError) -> None:
    """Count a refused page (no sign-in, wrong role, a forged form) in the audit log, as the APIs count theirs."""
    denials: DenialLog | None = getattr(request.app.state, "denials", None)
    if denials is None or error.status_code not in (401, 403) or error.audited:
        return
    viewer: Viewer | None = _state(request).get("viewer")
    try:
        denials.deny(
            actor=viewer.actor if viewer is not None and viewer.actor else ANONYMOUS,
            client=request.client.host if request.client else "unknown",
            action="portal",
            resource=request.url.path,
            status=error.status_code,
            code=error.code,
            reason=error.message,
            method=request.method,
            details={},
        )
    except Exception:
        log.exception("a refused portal request could not be written to the audit log")


def finish(request: Request, response: Response) -> None:
    """Write the session back, set or clear its cookie, add the security headers."""
    portal = portal_of(request)
    state = _state(request)
    session: Session | None = state.get("session")
    if session is not None:
        portal.sessions.save(session)
        if session.new:
            max_age = max(60, int((session.expires_at - utcnow()).total_seconds()))
            _set_cookie(response, portal, portal.cookie_name, session.secret, max_age)
    elif state.get("ended"):
        _set_cookie(response, portal, portal.cookie_name, None)
    if "signin" in state:
        nonce = os.urandom(12)
        sealed = _signin_sealer(portal).encrypt(nonce, json.dumps(state["signin"]).encode(), b"signin")
        value = base64.urlsafe_b64encode(nonce + sealed).decode()
        _set_cookie(response, portal, portal.signin_cookie_name, value, SIGNIN_SECONDS)
    elif state.get("signin_taken"):
        _set_cookie(response, portal, portal.signin_cookie_name, None)
    if "new_visitor" in state:
        # Until the browser closes: a form left open for hours still carries a token that matches it.
        _set_cookie(response, portal, portal.visitor_cookie_name, state["new_visitor"])
    for name, value in security_headers(portal).items():
        response.headers.setdefault(name, value)


def _set_cookie(response: Response, portal: Portal, name: str, value: str | None, max_age: int | None = None) -> None:
    """Set (or, for ``None``, clear) one of the portal's cookies: site-wide, HttpOnly, never sent cross-site by POST."""
    if value is None:
        response.delete_cookie(name, path="/", secure=portal.secure, httponly=True, samesite="lax")
        return
    response.set_cookie(name, value, max_age=max_age, path="/", secure=portal.secure, httponly=True, samesite="lax")


def portal_router() -> APIRouter:
    """A router for portal pages: under ``/portal``, with ``PortalRoute``, left out of the OpenAPI document."""
    return APIRouter(prefix=PREFIX, route_class=PortalRoute, include_in_schema=False)
