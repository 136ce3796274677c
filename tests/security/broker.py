"""A GA4GH AAI broker on loopback for the passport tests: its own ES256 key, real tokens over real HTTP.

It is what LS Login or ELIXIR AAI are to a node, cut down to what a Passport Clearinghouse talks to:
OIDC discovery, a JWKS, a UserInfo endpoint answering the visas of a passport-scoped access token, and a
token endpoint doing the AAI's RFC 8693 token exchange of such a token for a passport (client credentials
required). ``/admin/*`` stands in for the login a researcher would do in a browser, and lets a test rotate
the key, revoke a token and read what the node asked (to count fetches and connections).

Run: ``python broker.py --port PORT [--client-id ID --client-secret SECRET]``.
"""

from __future__ import annotations

import argparse
import base64
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

import uvicorn
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

PASSPORT_TYPE = "urn:ga4gh:params:oauth:token-type:passport"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"


class Broker:
    def __init__(self, issuer: str, client_id: str | None, client_secret: str | None) -> None:
        self.issuer = issuer
        self.client = (client_id, client_secret) if client_id else None
        self.key = ECKey.generate_key("P-256", auto_kid=True)
        self.visas: dict[str, list[str]] = {}
        self.revoked: set[str] = set()
        self.calls: list[dict[str, Any]] = []

    def sign(self, claims: dict[str, Any], typ: str, key: ECKey | None = None) -> str:
        key = key or self.key
        return jwt.encode({"alg": "ES256", "typ": typ, "kid": key.kid}, claims, key, algorithms=["ES256"])

    def log(self, request: Request, endpoint: str) -> None:
        client = request.client
        self.calls.append({"endpoint": endpoint, "peer": f"{client.host}:{client.port}" if client else ""})

    def access_claims(self, token: str) -> dict[str, Any] | None:
        """The claims of a live access token this broker issued, or None."""
        try:
            claims = dict(jwt.decode(token, KeySet([self.key]), algorithms=["ES256"]).claims)
        except (JoseError, ValueError):
            return None
        if claims.get("exp", 0) < time.time() or claims.get("jti") in self.revoked:
            return None
        return claims

    # -- what a clearinghouse calls -----------------------------------------------------------------

    async def discovery(self, request: Request) -> JSONResponse:
        self.log(request, "discovery")
        return JSONResponse(
            {
                "issuer": self.issuer,
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "token_endpoint": f"{self.issuer}/token",
                "grant_types_supported": ["authorization_code", TOKEN_EXCHANGE],
                "scopes_supported": ["openid", "ga4gh_passport_v1"],
            }
        )

    async def jwks(self, request: Request) -> JSONResponse:
        self.log(request, "jwks")
        return JSONResponse({"keys": [{**self.key.as_dict(private=False), "use": "sig", "alg": "ES256"}]})

    async def userinfo(self, request: Request) -> JSONResponse:
        self.log(request, "userinfo")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        claims = self.access_claims(token) if scheme.lower() == "bearer" else None
        if claims is None:
            return JSONResponse({"error": "invalid_token"}, 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return JSONResponse({"sub": claims["sub"], "ga4gh_passport_v1": self.visas.get(claims["sub"], [])})

    async def token(self, request: Request) -> JSONResponse:
        self.log(request, "token")
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        given = base64.b64decode(credentials).decode().split(":", 1) if scheme.lower() == "basic" else []
        if self.client is None or tuple(given) != self.client:
            return JSONResponse({"error": "invalid_client"}, 401)
        # application/x-www-form-urlencoded, read without python-multipart (Starlette's form() needs it)
        form = {key: values[0] for key, values in parse_qs((await request.body()).decode()).items()}
        if (
            form.get("grant_type") != TOKEN_EXCHANGE
            or form.get("requested_token_type") != PASSPORT_TYPE
            or form.get("subject_token_type") != ACCESS_TOKEN_TYPE
        ):
            return JSONResponse({"error": "invalid_request"}, 400)
        claims = self.access_claims(str(form.get("subject_token", "")))
        if claims is None:
            return JSONResponse({"error": "invalid_grant"}, 400)
        now = int(time.time())
        passport = self.sign(
            {
                "iss": self.issuer,
                "sub": claims["sub"],
                "aud": [self.client[0]],
                "iat": now,
                "exp": now + 600,
                "jti": str(uuid.uuid4()),
                "ga4gh_passport_v1": self.visas.get(claims["sub"], []),
            },
            "vnd.ga4gh.passport+jwt",
        )
        body = {"access_token": passport, "issued_token_type": PASSPORT_TYPE, "token_type": "N_A", "expires_in": 600}
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    # -- the test's side ----------------------------------------------------------------------------

    async def login(self, request: Request) -> JSONResponse:
        """A researcher's login: store their visas, return a passport-scoped access token (claims overridable)."""
        body = await request.json()
        now = int(time.time())
        self.visas[body["sub"]] = body.get("visas", [])
        claims = {
            "iss": self.issuer,
            "sub": body["sub"],
            "aud": ["researcher-app"],
            "iat": now,
            "exp": now + 600,
            "jti": str(uuid.uuid4()),
            "scope": "openid ga4gh_passport_v1",
            **body.get("claims", {}),
        }
        key = ECKey.generate_key("P-256", auto_kid=True) if body.get("rogue_key") else None
        return JSONResponse({"access_token": self.sign(claims, body.get("typ", "at+jwt"), key)})

    async def revoke(self, request: Request) -> JSONResponse:
        token = (await request.json())["token"]
        self.revoked.add(dict(jwt.decode(token, KeySet([self.key]), algorithms=["ES256"]).claims)["jti"])
        return JSONResponse({})

    async def rotate(self, _: Request) -> JSONResponse:
        self.key = ECKey.generate_key("P-256", auto_kid=True)
        return JSONResponse({"kid": self.key.kid})

    async def stats(self, _: Request) -> JSONResponse:
        return JSONResponse({"calls": self.calls})


def app(broker: Broker) -> Starlette:
    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", broker.discovery),
            Route("/jwks", broker.jwks),
            Route("/userinfo", broker.userinfo, methods=["GET", "POST"]),
            Route("/token", broker.token, methods=["POST"]),
            Route("/admin/login", broker.login, methods=["POST"]),
            Route("/admin/revoke", broker.revoke, methods=["POST"]),
            Route("/admin/rotate", broker.rotate, methods=["POST"]),
            Route("/admin/stats", broker.stats),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    args = parser.parse_args()
    broker = Broker(f"http://127.0.0.1:{args.port}", args.client_id, args.client_secret)
    uvicorn.run(app(broker), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
