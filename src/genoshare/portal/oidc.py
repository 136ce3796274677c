"""The portal as an OpenID Connect client of a passport broker: authorization-code flow with PKCE (RFC 7636).

What the browser carries is only the authorization code and ``state``; the code is useless without the
PKCE verifier, which never leaves the server (it waits in the visitor's session with ``state`` and the
ID token's ``nonce``). The access token the broker returns is a passport-scoped token: the node's own
``PassportVerifier`` turns it into an identity (through the broker's UserInfo), exactly as it does for
API callers, so sign-in adds no second way of trusting a broker.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from genoshare.errors import BadGateway, Unauthenticated
from genoshare.settings import PortalSettings

DISCOVERY_SECONDS = 3600
#: The broker's answer in the callback's address: its code and state are left out of every log line.
_CALLBACK_QUERY = re.compile(r"(/portal/signin/callback)\?[^\s\"']*")
ALGORITHMS = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA"]
LEEWAY = 60


@dataclass(frozen=True)
class Pending:
    """A sign-in under way, kept in the visitor's session until the broker sends them back."""

    state: str
    nonce: str
    verifier: str

    def as_dict(self) -> dict[str, str]:
        return {"state": self.state, "nonce": self.nonce, "verifier": self.verifier}


def challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


class OidcClient:
    def __init__(self, settings: PortalSettings, http: httpx.Client) -> None:
        assert settings.oidc_issuer is not None and settings.oidc_client_id is not None
        self.issuer = settings.oidc_issuer.rstrip("/")
        self.client_id = settings.oidc_client_id
        file = settings.oidc_client_secret_file
        self.client_secret = file.read_text().strip() if file is not None else None
        self.scope = settings.oidc_scope
        self.http = http
        self._discovery: tuple[float, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def discovery(self) -> dict[str, Any]:
        with self._lock:
            if self._discovery is not None and self._discovery[0] > time.monotonic():
                return self._discovery[1]
        document = self._json("GET", f"{self.issuer}/.well-known/openid-configuration")
        if document.get("issuer", "").rstrip("/") != self.issuer:
            raise BadGateway(f"the passport broker's discovery document names another issuer: {document.get('issuer')}")
        with self._lock:
            self._discovery = (time.monotonic() + DISCOVERY_SECONDS, document)
        return document

    def start(self, redirect_uri: str, login_hint: str | None = None) -> tuple[str, Pending]:
        """Where to send the browser, and what to keep until it comes back."""
        endpoint = self.discovery().get("authorization_endpoint")
        if not isinstance(endpoint, str):
            raise BadGateway("the passport broker's discovery document has no authorization_endpoint")
        pending = Pending(secrets.token_urlsafe(24), secrets.token_urlsafe(24), secrets.token_urlsafe(48))
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": self.scope,
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": challenge(pending.verifier),
            "code_challenge_method": "S256",
        }
        if login_hint:
            query["login_hint"] = login_hint
        return f"{endpoint}?{urlencode(query)}", pending

    def finish(self, pending: Pending, state: str, code: str, redirect_uri: str) -> str:
        """The access token for ``code``, once ``state`` and the ID token's ``nonce`` match this sign-in."""
        if not hmac.compare_digest(state, pending.state):
            raise Unauthenticated("this sign-in was not started here (state does not match); please sign in again")
        discovery = self.discovery()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": pending.verifier,
            "client_id": self.client_id,
        }
        auth = (self.client_id, self.client_secret) if self.client_secret is not None else None
        tokens = self._json("POST", str(discovery.get("token_endpoint")), data=form, auth=auth)
        access_token = tokens.get("access_token")
        if not isinstance(access_token, str) or not access_token:
            raise Unauthenticated("the passport broker did not issue an access token")
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise Unauthenticated("the passport broker sent no ID token")
        self._check_id_token(id_token, pending.nonce, discovery)
        return access_token

    def _check_id_token(self, token: str, nonce: str, discovery: dict[str, Any]) -> None:
        keys = KeySet.import_key_set(self._json("GET", str(discovery.get("jwks_uri"))))  # type: ignore[arg-type]
        try:
            claims = dict(jwt.decode(token, keys, algorithms=ALGORITHMS).claims)
        except (JoseError, ValueError) as error:
            raise Unauthenticated(f"the broker's ID token does not verify: {error}") from None
        audience = claims.get("aud")
        audiences = [audience] if isinstance(audience, str) else audience if isinstance(audience, list) else []
        now = time.time()
        if str(claims.get("iss", "")).rstrip("/") != self.issuer or self.client_id not in audiences:
            raise Unauthenticated("the ID token is not from the broker, or not for this node")
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] + LEEWAY < now:
            raise Unauthenticated("the ID token has expired")
        if not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise Unauthenticated("the ID token was not made for this sign-in (nonce does not match)")

    def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        try:
            response = self.http.request(method, url, headers={"Accept": "application/json"}, **kwargs)
        except httpx.HTTPError as error:
            raise BadGateway(f"the passport broker did not answer: {type(error).__name__}") from None
        if response.status_code in (400, 401):
            raise Unauthenticated("the passport broker refused this sign-in; please sign in again")
        if response.status_code != 200:
            raise BadGateway(f"the passport broker answered {response.status_code}")
        try:
            body = response.json()
        except (ValueError, RecursionError):  # RecursionError: JSON nested past the parser's limit
            raise BadGateway("the passport broker sent an unreadable answer") from None
        if not isinstance(body, dict):
            raise BadGateway("the passport broker sent an unreadable answer")
        return body


class CallbackQueryFilter(logging.Filter):
    """Rewrites the callback's query (authorization code, state) out of log records (uvicorn's access log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_redact(arg) if isinstance(arg, str) else arg for arg in record.args)
        if isinstance(record.msg, str):
            record.msg = _redact(record.msg)
        return True


def _redact(text: str) -> str:
    return _CALLBACK_QUERY.sub(r"\1?[redacted]", text) if "/portal/signin/callback" in text else text


def install_log_filter() -> None:
    """Safe to call more than once (one filter per logger)."""
    for name in ("uvicorn.access", "uvicorn.error", "uvicorn", "genoshare"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, CallbackQueryFilter) for f in logger.filters):
            logger.addFilter(CallbackQueryFilter())
