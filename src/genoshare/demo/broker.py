"""DEMO ONLY: a passport broker for the demo node, so its portal's sign-in runs a real OpenID Connect flow.

It stands in for LS Login or ELIXIR AAI: OIDC discovery, a JWKS, an authorization endpoint whose "login"
is a page with a button per demo account (no password: anyone who reaches it signs in as anyone), the
authorization-code grant with PKCE (S256 only) for one registered client, ID tokens, passport-scoped
access tokens and a UserInfo endpoint with the account's visas, all signed with its own key over real
HTTP. Never configure a real node to trust it; ``genoshare demo`` starts it beside the demo node.

Run alone: ``python -m genoshare.demo.broker --port PORT --data-dir DIR --redirect-uri URI``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import html
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import uvicorn
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import RESEARCHER_STATUS
from genoshare.settings import BONA_FIDE_RESEARCHER

CLIENT_ID = "genoshare-demo-portal"
SCOPE = "openid ga4gh_passport_v1"
TOKEN_LIFETIME = 3600
CODE_LIFETIME = 120
AFFILIATION_AND_ROLE = "AffiliationAndRole"
#: An OIDC form is a few hundred bytes: more is refused before it is held in memory.
MAX_FORM_BYTES = 16 * 1024


class _TooLarge(Exception):
    """A request body over ``MAX_FORM_BYTES``."""


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded form of ``request``, read no further than ``MAX_FORM_BYTES`` (Starlette's has no bound)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise _TooLarge
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=100))
    except (UnicodeDecodeError, ValueError):
        raise _TooLarge from None


@dataclass(frozen=True)
class DemoAccount:
    subject: str
    name: str
    role: str
    affiliation: str
    #: A registered (bona fide) researcher: the broker asserts a ResearcherStatus visa.
    researcher: bool = True


#: The demo's people: the researcher asks for access, the committee member decides, the steward looks after.
ACCOUNTS = (
    DemoAccount("demo-researcher", "Dr Ada Researcher", "researcher", "faculty@demo-university.example"),
    DemoAccount("demo-dac", "Prof Ben Committee", "access committee member", "faculty@demo-hospital.example"),
    DemoAccount("demo-steward", "Cleo Steward", "data steward", "staff@demo-hospital.example", researcher=False),
)


@dataclass
class _Code:
    account: DemoAccount
    redirect_uri: str
    challenge: str
    nonce: str | None
    expires: float


@dataclass
class DemoBroker:
    signer: VisaIssuer
    redirect_uris: tuple[str, ...]
    client_secret: str | None = None
    codes: dict[str, _Code] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def issuer(self) -> str:
        return self.signer.issuer

    def account(self, subject: str) -> DemoAccount | None:
        return next((account for account in ACCOUNTS if account.subject == subject), None)

    # -- OIDC endpoints ------------------------------------------------------------------------------

    async def discovery(self, _: Request) -> JSONResponse:
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "jwks_uri": f"{self.issuer}/jwks",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code"],
                "code_challenge_methods_supported": ["S256"],
                "scopes_supported": SCOPE.split(),
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["ES256"],
                "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
            }
        )

    async def jwks(self, _: Request) -> JSONResponse:
        return JSONResponse(self.signer.jwks())

    async def authorize(self, request: Request) -> Response:
        params = await _form(request) if request.method == "POST" else dict(request.query_params)
        problem = self._check_authorization(params)
        if problem:
            return _page("Sign-in refused", f"<p>{html.escape(problem)}</p>", 400)
        # A demo sign-in link names its account (OIDC ``login_hint``): signed in at once, no page.
        chosen = params.get("account") if request.method == "POST" else params.get("login_hint")
        account = self.account(str(chosen or ""))
        if account is None:
            return self._login_page(params)
        code = secrets.token_urlsafe(32)
        with self.lock:
            self.codes[code] = _Code(
                account,
                str(params["redirect_uri"]),
                str(params["code_challenge"]),
                str(params["nonce"]) if params.get("nonce") else None,
                time.time() + CODE_LIFETIME,
            )
        answer = {"code": code, **({"state": str(params["state"])} if params.get("state") else {})}
        return RedirectResponse(f"{params['redirect_uri']}?{urlencode(answer)}", status_code=303)

    def _check_authorization(self, params: dict[str, Any]) -> str | None:
        if params.get("client_id") != CLIENT_ID:
            return "unknown client_id"
        if params.get("redirect_uri") not in self.redirect_uris:
            return "redirect_uri is not registered for this client"
        if params.get("response_type") != "code":
            return "only response_type=code is supported"
        if params.get("code_challenge_method") != "S256" or not params.get("code_challenge"):
            return "PKCE with code_challenge_method=S256 is required"
        if "openid" not in str(params.get("scope", "")).split():
            return "scope must include openid"
        return None

    def _login_page(self, params: dict[str, Any]) -> HTMLResponse:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(name)}" value="{html.escape(str(value))}">'
            for name, value in params.items()
            if name not in ("account", "login_hint")
        )
        buttons = "".join(
            f'<li><button type="submit" name="account" value="{html.escape(a.subject)}">'
            f"Sign in as {html.escape(a.name)}</button> ({html.escape(a.role)}, {html.escape(a.affiliation)})</li>"
            for a in ACCOUNTS
        )
        body = (
            "<p><strong>Demo only.</strong> This is the genoshare demo's stand-in for a research identity "
            "provider: no password, anyone can sign in as anyone. A real node uses a real passport broker.</p>"
            f'<form method="post" action="/authorize">{hidden}<ul>{buttons}</ul></form>'
        )
        return _page("Demo passport broker: choose an account", body)

    async def token(self, request: Request) -> JSONResponse:
        form = await _form(request)
        client_id, secret = _client_credentials(request, form)
        if client_id != CLIENT_ID or (
            self.client_secret is not None and not hmac.compare_digest(secret or "", self.client_secret)
        ):
            return JSONResponse({"error": "invalid_client"}, 401)
        if form.get("grant_type") != "authorization_code":
            return JSONResponse({"error": "unsupported_grant_type"}, 400)
        with self.lock:
            code = self.codes.pop(str(form.get("code", "")), None)  # one use only
        verifier = str(form.get("code_verifier", ""))
        if (
            code is None
            or code.expires < time.time()
            or form.get("redirect_uri") != code.redirect_uri
            or not hmac.compare_digest(_challenge(verifier), code.challenge)
        ):
            return JSONResponse({"error": "invalid_grant"}, 400)
        now = int(time.time())
        account = code.account
        access = self.signer.sign(
            {
                "iss": self.issuer,
                "sub": account.subject,
                "aud": [CLIENT_ID],
                "iat": now,
                "exp": now + TOKEN_LIFETIME,
                "jti": str(uuid.uuid4()),
                "scope": SCOPE,
            },
            typ="at+jwt",
        )
        id_claims = {
            "iss": self.issuer,
            "sub": account.subject,
            "aud": CLIENT_ID,
            "iat": now,
            "exp": now + TOKEN_LIFETIME,
            "name": account.name,
            **({"nonce": code.nonce} if code.nonce else {}),
        }
        body = {
            "access_token": access,
            "token_type": "Bearer",
            "expires_in": TOKEN_LIFETIME,
            "scope": SCOPE,
            "id_token": self.signer.sign(id_claims, typ="JWT"),
        }
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    async def userinfo(self, request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            claims = dict(jwt.decode(token, KeySet([self.signer.key]), algorithms=["ES256"]).claims)
        except (JoseError, ValueError):
            claims = {}
        account = self.account(str(claims.get("sub", "")))
        if scheme.lower() != "bearer" or account is None or int(claims.get("exp", 0)) < time.time():
            return JSONResponse({"error": "invalid_token"}, 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return JSONResponse({"sub": account.subject, "name": account.name, "ga4gh_passport_v1": self.visas(account)})

    def visas(self, account: DemoAccount) -> list[str]:
        visas = [self.signer.visa(account.subject, AFFILIATION_AND_ROLE, account.affiliation, by="system")]
        if account.researcher:
            visas.append(self.signer.visa(account.subject, RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by="so"))
        return visas


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _client_credentials(request: Request, form: dict[str, Any]) -> tuple[str | None, str | None]:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            client_id, _, secret = base64.b64decode(credentials).decode().partition(":")
        except ValueError:
            return None, None
        return client_id, secret
    sent_id, sent_secret = form.get("client_id"), form.get("client_secret")
    return (str(sent_id) if sent_id else None), (str(sent_secret) if sent_secret else None)


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title></head><body><main><h1>{html.escape(title)}</h1>{body}</main></body></html>"
    )
    headers = {"Content-Security-Policy": "default-src 'none'; form-action *", "X-Frame-Options": "DENY"}
    return HTMLResponse(document, status_code=status, headers=headers)


async def _too_large(_: Request, __: Exception) -> Response:
    return JSONResponse({"error": "invalid_request", "error_description": "the form is too large or malformed"}, 413)


def create_broker(issuer: str, data_dir: Path, redirect_uris: tuple[str, ...], client_secret: str | None) -> Starlette:
    signer = VisaIssuer.load_or_create(issuer, data_dir / "keys" / "demo-broker.jwk.json")
    broker = DemoBroker(signer, redirect_uris, client_secret)
    return Starlette(
        exception_handlers={_TooLarge: _too_large},
        routes=[
            Route("/.well-known/openid-configuration", broker.discovery),
            Route("/jwks", broker.jwks),
            Route("/authorize", broker.authorize, methods=["GET", "POST"]),
            Route("/token", broker.token, methods=["POST"]),
            Route("/userinfo", broker.userinfo, methods=["GET", "POST"]),
        ],
    )


def start_in_thread(
    host: str, port: int, data_dir: Path, redirect_uris: tuple[str, ...], client_secret: str | None = None
) -> uvicorn.Server:
    """The broker on ``host:port`` in a daemon thread, for ``genoshare demo`` (which serves the node itself)."""
    app = create_broker(f"http://{host}:{port}", data_dir, redirect_uris, client_secret)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    threading.Thread(target=server.run, name="demo-broker", daemon=True).start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description="DEMO ONLY passport broker for genoshare's demo portal")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--redirect-uri", action="append", required=True)
    parser.add_argument("--client-secret-file", type=Path)
    args = parser.parse_args()
    secret = args.client_secret_file.read_text().strip() if args.client_secret_file else None
    app = create_broker(f"http://{args.host}:{args.port}", args.data_dir, tuple(args.redirect_uri), secret)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
