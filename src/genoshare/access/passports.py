"""Verifies GA4GH Passports (v1.2) and their visas against the node's trusted issuers.

A passport is accepted only if it and each visa used are signed by a trusted issuer's key (found by
``kid`` in that issuer's JWKS), are not expired, name the same subject, and no visa is ``asserted`` in the
future.  Visas that fail are dropped with a reason rather than failing the whole passport, because one
stale grant should not hide the others; a passport whose own signature fails is rejected outright.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from genoshare.errors import Unauthenticated
from genoshare.settings import TrustedIssuer

ALGORITHMS = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA"]
#: Clock skew tolerated between this node and the issuers.
LEEWAY_SECONDS = 60
JWKS_CACHE_SECONDS = 300


@dataclass(frozen=True)
class Visa:
    type: str
    value: str
    source: str
    by: str
    asserted: int
    issuer: str
    expires: int
    jti: str


@dataclass(frozen=True)
class Identity:
    subject: str
    issuer: str
    visas: tuple[Visa, ...] = ()
    rejected_visas: tuple[str, ...] = field(default=(), compare=False)

    @property
    def actor(self) -> str:
        """How the audit log names this person: the subject at its issuer, never the token."""
        return f"{self.subject}@{self.issuer}"

    def visas_of_type(self, visa_type: str) -> list[Visa]:
        return [visa for visa in self.visas if visa.type == visa_type]


class TrustedKeys:
    """JWKS of the trusted issuers, from files or URLs, cached for a few minutes."""

    def __init__(self, issuers: list[TrustedIssuer], http: httpx.Client | None = None) -> None:
        self._issuers = {issuer.issuer: issuer for issuer in issuers}
        self._http = http
        self._cache: dict[str, tuple[float, KeySet]] = {}
        self._lock = threading.Lock()

    def is_trusted(self, issuer: str) -> bool:
        return issuer in self._issuers

    def key_set(self, issuer: str) -> KeySet:
        with self._lock:
            cached = self._cache.get(issuer)
            if cached and cached[0] > time.monotonic():
                return cached[1]
        source = self._issuers[issuer]
        try:
            if source.jwks_file is not None:
                document = json.loads(source.jwks_file.read_text())
            else:
                client = self._http or httpx.Client(timeout=5)
                document = client.get(str(source.jwks_url)).raise_for_status().json()
            keys = KeySet.import_key_set(document)
        except (OSError, ValueError, httpx.HTTPError, JoseError) as error:
            raise Unauthenticated(f"cannot load the signing keys of trusted issuer {issuer}: {error}") from error
        with self._lock:
            self._cache[issuer] = (time.monotonic() + JWKS_CACHE_SECONDS, keys)
        return keys


class PassportVerifier:
    """Verifies passports; a verified one is remembered (by its hash) until it expires.

    Checking ES256/RS256 signatures costs ~0.5 ms per passport and visa, on every request of a session.
    Only the signature work is cached: expiry is re-checked on every use, and decisions that can change
    (revocations, consent) are never cached here.
    """

    CACHE_SIZE = 1024

    def __init__(self, keys: TrustedKeys) -> None:
        self.keys = keys
        self._verified: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._lock = threading.Lock()

    def _verified_claims(self, token: str, what: str, now: float) -> dict[str, Any]:
        try:
            # Read the issuer unverified, only to pick whose keys will verify the signature.
            unverified = json.loads(extract_compact(token.encode()).payload)
        except (JoseError, ValueError, TypeError, UnicodeError) as error:
            raise Unauthenticated(f"{what} is not a well-formed JWT") from error
        issuer = unverified.get("iss") if isinstance(unverified, dict) else None
        if not isinstance(issuer, str) or not self.keys.is_trusted(issuer):
            raise Unauthenticated(f"{what} is signed by an issuer this node does not trust: {issuer!r}")
        try:
            token_obj = jwt.decode(token, self.keys.key_set(issuer), algorithms=ALGORITHMS)
        except (JoseError, ValueError) as error:
            raise Unauthenticated(f"{what} signature does not verify against {issuer}'s keys") from error
        claims = dict(token_obj.claims)
        exp = claims.get("exp")
        if not isinstance(exp, int | float):
            raise Unauthenticated(f"{what} has no expiry")
        if exp + LEEWAY_SECONDS < now:
            raise Unauthenticated(f"{what} expired")
        if not isinstance(claims.get("sub"), str):
            raise Unauthenticated(f"{what} has no subject")
        return claims

    def remembered(self, passport: str, now: float | None = None) -> Identity | None:
        """The identity of a passport verified before and not yet expired, or None: no signature work, no I/O.

        The API asks this on the event loop and verifies anything else in a worker thread.
        """
        now = time.time() if now is None else now
        key = hashlib.sha256(passport.encode()).hexdigest()
        with self._lock:
            cached = self._verified.get(key)
            if cached is not None:
                self._verified.move_to_end(key)
        if cached is None or cached[0] + LEEWAY_SECONDS < now:
            return None
        identity = cached[1]
        live = tuple(visa for visa in identity.visas if visa.expires + LEEWAY_SECONDS >= now)
        return identity if len(live) == len(identity.visas) else replace(identity, visas=live)

    def verify(self, passport: str, now: float | None = None) -> Identity:
        now = time.time() if now is None else now
        remembered = self.remembered(passport, now)
        if remembered is not None:
            return remembered
        key = hashlib.sha256(passport.encode()).hexdigest()
        identity, expires = self._verify_uncached(passport, now)
        with self._lock:
            self._verified[key] = (expires, identity)
            while len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        return identity

    def _verify_uncached(self, passport: str, now: float) -> tuple[Identity, float]:
        claims = self._verified_claims(passport, "passport", now)
        raw_visas = claims.get("ga4gh_passport_v1")
        if not isinstance(raw_visas, list):
            raise Unauthenticated("token is not a GA4GH passport (no ga4gh_passport_v1 claim)")
        visas: list[Visa] = []
        rejected: list[str] = []
        for index, raw in enumerate(raw_visas):
            try:
                visas.append(self._visa(raw, claims["sub"], now))
            except Unauthenticated as error:
                rejected.append(f"visa {index}: {error.message}")
        return Identity(claims["sub"], claims["iss"], tuple(visas), tuple(rejected)), float(claims["exp"])

    def verify_all(self, passports: list[str], now: float | None = None) -> Identity:
        """Several passports of one person (DRS allows a list): their visas are pooled."""
        identities = [self.verify(passport, now) for passport in passports]
        first = identities[0]
        if any((i.subject, i.issuer) != (first.subject, first.issuer) for i in identities[1:]):
            raise Unauthenticated("the passports name different people; send the passports of one person")
        return Identity(
            first.subject,
            first.issuer,
            tuple(visa for identity in identities for visa in identity.visas),
            tuple(reason for identity in identities for reason in identity.rejected_visas),
        )

    def _visa(self, token: object, subject: str, now: float) -> Visa:
        if not isinstance(token, str):
            raise Unauthenticated("visa is not a JWT string")
        claims = self._verified_claims(token, "visa", now)
        if claims["sub"] != subject:
            raise Unauthenticated("visa names another subject than its passport")
        body = claims.get("ga4gh_visa_v1")
        if not isinstance(body, dict):
            raise Unauthenticated("visa has no ga4gh_visa_v1 claim")
        asserted = body.get("asserted")
        if not isinstance(asserted, int) or asserted > now + LEEWAY_SECONDS:
            raise Unauthenticated("visa 'asserted' is missing or in the future")
        for key in ("type", "value", "source", "by"):
            if key != "by" and not isinstance(body.get(key), str):
                raise Unauthenticated(f"visa has no {key!r}")
        return Visa(
            type=body["type"],
            value=body["value"],
            source=body["source"],
            by=str(body.get("by", "")),
            asserted=asserted,
            issuer=claims["iss"],
            expires=int(claims["exp"]),
            jti=str(claims.get("jti", "")),
        )
