"""Verifies GA4GH Passports and visas (AAI 1.2.1, Passport 1.2.1) as a Passport Clearinghouse.

A bearer token is either a passport (``typ: vnd.ga4gh.passport+jwt``) or the access token of a trusted
broker (``typ: at+jwt`` or ``JWT``, scope ``openid ga4gh_passport_v1``); for the latter the node gets the
visas from the broker: by token exchange (RFC 8693) when it holds client credentials there, which the AAI
profile prefers, or else from the broker's UserInfo endpoint.

Every JWT must be signed by a trusted issuer's key (found by ``kid``; an unknown ``kid`` refetches that
issuer's keys, rate-limited), carry ``exp``, ``iat`` and ``sub``, and pass ``nbf``, ``iat`` and ``aud`` checks
within a small leeway. Visas must name the passport's subject and have an integer ``asserted`` not in the
future. Then the node's per-type policy (``PassportSettings``: which ``by``, issuers, sources and values count)
and each visa's ``conditions`` decide which visas count. A visa that fails is dropped with a reason rather
than failing the whole passport, because one stale grant should not hide the others; a passport or access
token that fails is rejected outright.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any, TypeGuard

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact

from genoshare.access import conditions as visa_conditions
from genoshare.errors import BadGateway, Unauthenticated
from genoshare.settings import ANY, PassportSettings, Peer, TrustedIssuer, VisaTypePolicy

ALGORITHMS = ["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA"]
RESEARCHER_STATUS = "ResearcherStatus"
CONTROLLED_ACCESS_GRANTS = "ControlledAccessGrants"
PASSPORT_CLAIM = "ga4gh_passport_v1"
VISA_CLAIM = "ga4gh_visa_v1"
#: JWT ``typ`` media types (compared without case and without an ``application/`` prefix, RFC 7515 4.1.9).
PASSPORT_TYP = "vnd.ga4gh.passport+jwt"
VISA_TYP = "vnd.ga4gh.visa+jwt"
VISA_TYPS = frozenset({VISA_TYP, "jwt", "at+jwt"})
ACCESS_TOKEN_TYPS = frozenset({"at+jwt", "jwt"})
#: RFC 8693 token exchange, as the AAI profile's Passport Issuers implement it.
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"  # noqa: S105 - a name, not a secret
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"  # noqa: S105
PASSPORT_TOKEN_TYPE = "urn:ga4gh:params:oauth:token-type:passport"  # noqa: S105
JWKS_CACHE_SECONDS = 300
DISCOVERY_CACHE_SECONDS = 3600
#: AAI: a Visa Access Token older than this is invalid unless polled, which this node does not do.
VISA_ACCESS_TOKEN_MAX_AGE = 3600
JSON = {"Accept": "application/json"}
#: An issuer's key set or discovery document is a few KiB: more is no such document, and is not read on.
MAX_DOCUMENT_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Visa:
    type: str
    value: str
    source: str
    by: str
    asserted: int
    issuer: str
    #: The visa's ``exp``, or earlier: when the visas its conditions rely on expire.
    expires: int
    jti: str
    conditions: Any = field(default=None, compare=False)
    #: The visa as it was signed: a node-signed passport carries a researcher's ResearcherStatus on unchanged,
    #: so that other nodes judge it against its own issuer (``governance.requests``).
    token: str = field(default="", compare=False, repr=False)


#: How the audit log and data tickets name a caller without a passport.
ANONYMOUS = "anonymous"


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


def _typ(header: dict[str, Any]) -> str | None:
    typ = header.get("typ")
    if not isinstance(typ, str):
        return None
    typ = typ.strip().lower()
    return typ.removeprefix("application/")


def _peek(token: str, what: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and payload, unverified: only to pick whose keys verify the signature and how to read it."""
    try:
        compact = extract_compact(token.encode())
        header, payload = dict(compact.headers()), json.loads(compact.payload)
    except (JoseError, ValueError, TypeError, UnicodeError, RecursionError) as error:  # Recursion: nested too deep
        raise Unauthenticated(f"{what} is not a well-formed JWT") from error
    if not isinstance(payload, dict):
        raise Unauthenticated(f"{what} is not a well-formed JWT")
    return header, payload


def token_issuer(token: str) -> str | None:
    """The ``iss`` a bearer token claims, unverified: only to choose which peers may be sent it.

    Sending a token only where its claimed issuer is trusted is safe whatever it claims: the peer verifies it.
    """
    try:
        _, payload = _peek(token, "token")
    except Unauthenticated:
        return None
    issuer = payload.get("iss")
    return issuer if isinstance(issuer, str) else None


def peer_node_issuers(peers: Iterable[Peer]) -> list[TrustedIssuer]:
    """The peers whose visa-signing keys this node trusts (``trust_grants``).

    A peer node's issuer is its URL and its keys are at its ``/.well-known/jwks.json``; what its visas may
    grant is narrowed by ``PassportVerifier`` (``peer_nodes``).
    """
    return [
        TrustedIssuer(issuer=peer.url, jwks_url=f"{peer.url}/.well-known/jwks.json")
        for peer in peers
        if peer.trust_grants
    ]


def _number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


class TrustedKeys:
    """Signing keys (JWKS) and OIDC discovery documents of the trusted issuers, over one shared HTTP client.

    Keys are cached for a few minutes; a ``kid`` not in the cache refetches them at once (issuers rotate
    keys), but at most once per ``refetch_seconds`` per issuer, so forged ``kid`` values cannot make the
    node hammer an issuer.
    """

    def __init__(self, issuers: list[TrustedIssuer], http: httpx.Client, refetch_seconds: float = 10) -> None:
        self._issuers = {issuer.issuer: issuer for issuer in issuers}
        self.http = http
        self.refetch_seconds = refetch_seconds
        #: issuer -> (fetched at, keys)
        self._keys: dict[str, tuple[float, KeySet]] = {}
        self._metadata: dict[str, tuple[float, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._fetching = threading.Lock()
        #: The modification time of each ``jwks_file`` when it was read: a rotated key file is read again at
        #: once, rather than after ``refetch_seconds`` (a stat costs nothing an unknown kid could amplify).
        self._file_seen: dict[str, int] = {}

    def is_trusted(self, issuer: object) -> TypeGuard[str]:
        return isinstance(issuer, str) and issuer in self._issuers

    def config(self, issuer: str) -> TrustedIssuer:
        return self._issuers[issuer]

    @property
    def brokers(self) -> list[TrustedIssuer]:
        return [issuer for issuer in self._issuers.values() if issuer.broker]

    def _get_json(self, url: str, what: str) -> Any:
        """An issuer's JSON document; anything else (too large, nested too deep for the parser) is a 502."""
        try:
            with self.http.stream("GET", url, headers=JSON) as response:
                response.raise_for_status()
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise ValueError(f"answer larger than {MAX_DOCUMENT_BYTES} bytes")
            return json.loads(bytes(body))
        except RecursionError:
            raise BadGateway(f"cannot load {what}: JSON nested too deep") from None
        except (httpx.HTTPError, ValueError) as error:
            raise BadGateway(f"cannot load {what}: {error}") from error

    def metadata(self, issuer: str) -> dict[str, Any]:
        """The issuer's OIDC discovery document; its ``issuer`` must be the configured one exactly."""
        with self._lock:
            cached = self._metadata.get(issuer)
        if cached and cached[0] + DISCOVERY_CACHE_SECONDS > time.monotonic():
            return cached[1]
        url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        document = self._get_json(url, f"the OIDC discovery document of {issuer}")
        if not isinstance(document, dict) or document.get("issuer") != issuer:
            raise BadGateway(f"the OIDC discovery document at {url} is not that of {issuer}")
        with self._lock:
            self._metadata[issuer] = (time.monotonic(), document)
        return document

    def endpoint(self, issuer: str, name: str, configured: str | None) -> str:
        url = configured or self.metadata(issuer).get(name)
        if not isinstance(url, str) or not url:
            raise BadGateway(f"trusted issuer {issuer} publishes no {name}")
        return url

    def key_set(self, issuer: str, kid: object = None) -> KeySet:
        cached = self._keys.get(issuer)
        if cached and self._usable(cached, kid):
            return cached[1]
        with self._fetching:
            cached = self._keys.get(issuer)  # another thread may have fetched meanwhile
            waiting = cached is not None and cached[0] + self.refetch_seconds > time.monotonic()
            if cached and (self._usable(cached, kid) or (waiting and not self._file_changed(issuer))):
                return cached[1]
            try:
                keys = self._fetch(issuer)
            except (Unauthenticated, BadGateway):
                if cached is None:
                    raise
                return cached[1]  # keep the keys we have; the unknown kid then fails verification
            with self._lock:
                self._keys[issuer] = (time.monotonic(), keys)
            return keys

    def _file_changed(self, issuer: str) -> bool:
        source = self._issuers[issuer]
        if source.jwks_file is None:
            return False
        try:
            return source.jwks_file.stat().st_mtime_ns != self._file_seen.get(issuer)
        except OSError:
            return False

    @staticmethod
    def _usable(cached: tuple[float, KeySet], kid: object) -> bool:
        fresh = cached[0] + JWKS_CACHE_SECONDS > time.monotonic()
        return fresh and (not isinstance(kid, str) or any(key.kid == kid for key in cached[1].keys))

    def _fetch(self, issuer: str) -> KeySet:
        source = self._issuers[issuer]
        what = f"the signing keys of trusted issuer {issuer}"
        if source.jwks_file is not None:
            try:
                self._file_seen[issuer] = source.jwks_file.stat().st_mtime_ns
                document = json.loads(source.jwks_file.read_text())
            except (OSError, ValueError) as error:
                raise Unauthenticated(f"cannot load {what}: {error}") from error
        else:
            document = self._get_json(self.endpoint(issuer, "jwks_uri", source.jwks_url), what)
        try:
            return KeySet.import_key_set(document)
        except (JoseError, ValueError, TypeError, KeyError) as error:
            raise BadGateway(f"cannot load {what}: {error}") from error


@dataclass(frozen=True)
class _TypeRule:
    """A ``VisaTypePolicy`` made ready to apply; ``None`` means any."""

    by: frozenset[str]
    issuers: frozenset[str] | None
    sources: frozenset[str] | None
    values: frozenset[str] | None

    @classmethod
    def of(cls, policy: VisaTypePolicy, *, also: Iterable[str] = ()) -> _TypeRule:
        def any_or(names: list[str]) -> frozenset[str] | None:
            return None if ANY in names else frozenset([*names, *also])

        values = None if ANY in policy.values else frozenset(policy.values)
        return cls(frozenset(policy.by), any_or(policy.issuers), any_or(policy.sources), values)

    def refusal(self, visa: Visa) -> str | None:
        if visa.by not in self.by:
            by = repr(visa.by) if visa.by else "missing (unknown)"
            return f"{visa.type} visa 'by' {by} does not count here (accepted: {', '.join(sorted(self.by))})"
        if self.issuers is not None and visa.issuer not in self.issuers:
            return f"{visa.type} visas of issuer {visa.issuer} do not count here"
        if self.sources is not None and visa.source not in self.sources:
            return f"{visa.type} visas of source {visa.source} do not count here"
        if self.values is not None and visa.value not in self.values:
            return f"{visa.type} visa value {visa.value!r} does not count here"
        return None


class PassportVerifier:
    """Verifies passports and broker access tokens; a verified one is remembered (by its hash) until it expires.

    Checking ES256/RS256 signatures costs ~0.5 ms per passport and visa, on every request of a session, and
    a broker round trip more. Only this work is cached: expiry is re-checked on every use, and decisions
    that can change (revocations, consent) are never cached here.
    """

    CACHE_SIZE = 1024

    def __init__(
        self,
        keys: TrustedKeys,
        settings: PassportSettings | None = None,
        *,
        node_issuer: str = "",
        audiences: Iterable[str] = (),
        peer_nodes: Iterable[str] = (),
    ) -> None:
        """``peer_nodes``: issuers (their URLs) of other nodes trusted for grants to their own datasets only."""
        self.keys = keys
        self.settings = settings or PassportSettings()
        self.leeway = self.settings.leeway_seconds
        self.audiences = frozenset(
            [*audiences, *self.settings.audiences, *(b.client_id for b in keys.brokers if b.client_id)]
        )
        own = [node_issuer] if node_issuer else []
        self.peer_nodes = frozenset(peer_nodes) - set(own)
        self.rules = {
            RESEARCHER_STATUS: _TypeRule.of(self.settings.researcher_status),
            CONTROLLED_ACCESS_GRANTS: _TypeRule.of(
                self.settings.controlled_access_grants, also=[*own, *sorted(self.peer_nodes)]
            ),
        }
        self._verified: OrderedDict[str, tuple[float, Identity]] = OrderedDict()
        self._lock = threading.Lock()

    # -- JWT checks ---------------------------------------------------------------------------------

    def _claims(self, token: str, what: str, now: float, typs: frozenset[str], *, typ_required: bool) -> dict[str, Any]:
        header, unverified = _peek(token, what)
        issuer = unverified.get("iss")
        if not self.keys.is_trusted(issuer):
            raise Unauthenticated(f"{what} is signed by an issuer this node does not trust: {issuer!r}")
        typ = _typ(header)
        if (typ is None and typ_required) or (typ is not None and typ not in typs):
            expected = " or ".join(sorted(typs))
            raise Unauthenticated(f"{what} has JWT type {header.get('typ')!r}; expected {expected}")
        try:
            token_obj = jwt.decode(token, self.keys.key_set(issuer, header.get("kid")), algorithms=ALGORITHMS)
        except (JoseError, ValueError) as error:
            raise Unauthenticated(f"{what} signature does not verify against {issuer}'s keys") from error
        claims = dict(token_obj.claims)
        self._check_times(claims, what, now)
        audience = claims.get("aud")
        if audience is not None:
            named = [audience] if isinstance(audience, str) else audience
            if not isinstance(named, list) or not self.audiences.intersection(a for a in named if isinstance(a, str)):
                raise Unauthenticated(f"{what} is meant for another service (aud {audience!r})")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthenticated(f"{what} has no subject")
        return claims

    def _check_times(self, claims: dict[str, Any], what: str, now: float) -> None:
        exp, iat, nbf = claims.get("exp"), claims.get("iat"), claims.get("nbf")
        if not _number(exp):
            raise Unauthenticated(f"{what} has no expiry")
        if exp + self.leeway < now:
            raise Unauthenticated(f"{what} expired")
        if not _number(iat):
            raise Unauthenticated(f"{what} has no 'iat' (issued at)")
        if iat > now + self.leeway:
            raise Unauthenticated(f"{what} is issued in the future ('iat')")
        if nbf is not None and (not _number(nbf) or nbf > now + self.leeway):
            raise Unauthenticated(f"{what} is not valid yet ('nbf')")

    # -- the cache ----------------------------------------------------------------------------------

    def remembered(self, token: str, now: float | None = None) -> Identity | None:
        """The identity of a token verified before and not yet expired, or None: no signature work, no I/O.

        The API asks this on the event loop and verifies anything else in a worker thread.
        """
        now = time.time() if now is None else now
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            cached = self._verified.get(key)
            if cached is not None:
                self._verified.move_to_end(key)
        if cached is None or cached[0] + self.leeway < now:
            return None
        identity = cached[1]
        live = tuple(visa for visa in identity.visas if visa.expires + self.leeway >= now)
        return identity if len(live) == len(identity.visas) else replace(identity, visas=live)

    def verify(self, token: str, now: float | None = None) -> Identity:
        now = time.time() if now is None else now
        remembered = self.remembered(token, now)
        if remembered is not None:
            return remembered
        key = hashlib.sha256(token.encode()).hexdigest()
        identity, expires = self._verify_uncached(token, now)
        with self._lock:
            self._verified[key] = (expires, identity)
            while len(self._verified) > self.CACHE_SIZE:
                self._verified.popitem(last=False)
        return identity

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

    def _verify_uncached(self, token: str, now: float) -> tuple[Identity, float]:
        header, payload = _peek(token, "token")
        if PASSPORT_CLAIM in payload or _typ(header) == PASSPORT_TYP:
            return self._passport(token, now)
        issuer = payload.get("iss")
        if self.keys.is_trusted(issuer) and self.keys.config(issuer).broker:
            return self._access_token(token, now)
        raise Unauthenticated(
            f"token is not a GA4GH passport (no {PASSPORT_CLAIM} claim) nor an access token of a trusted broker"
        )

    # -- passports ----------------------------------------------------------------------------------

    def _passport(self, token: str, now: float) -> tuple[Identity, float]:
        claims = self._claims(token, "passport", now, frozenset({PASSPORT_TYP}), typ_required=True)
        raw_visas = claims.get(PASSPORT_CLAIM)
        if not isinstance(raw_visas, list):
            raise Unauthenticated(f"token is not a GA4GH passport (no {PASSPORT_CLAIM} claim)")
        identity = self._identity(claims["sub"], claims["iss"], raw_visas, now)
        return identity, float(claims["exp"])

    def _identity(self, subject: str, issuer: str, raw_visas: list[Any], now: float) -> Identity:
        """The visas that count, after the JWT checks, the per-type policy and their conditions."""
        checked: list[Visa] = []
        rejected: list[str] = []
        for index, raw in enumerate(raw_visas):
            try:
                visa = self._visa(raw, subject, now)
            except Unauthenticated as error:
                rejected.append(f"visa {index}: {error.message}")
                continue
            rule = self.rules.get(visa.type)
            refusal = self._peer_node_refusal(visa) or (rule.refusal(visa) if rule else None)
            if refusal:
                rejected.append(f"visa {index}: {refusal}")
            else:
                checked.append(visa)
        # Conditions are met only by accepted visas without conditions of their own (no nesting, no loops).
        unconditional = [visa for visa in checked if visa.conditions is None]
        accepted: list[Visa] = []
        for visa in checked:
            if visa.conditions is None:
                accepted.append(visa)
                continue
            try:
                until = visa_conditions.met_until(visa.conditions, unconditional)
            except visa_conditions.ConditionError as error:
                rejected.append(f"{visa.type} visa refused: its conditions cannot be evaluated ({error})")
                continue
            if until is None:
                rejected.append(f"{visa.type} visa refused: its conditions are not met by the passport's visas")
            else:
                accepted.append(replace(visa, expires=min(visa.expires, until)))
        return Identity(subject, issuer, tuple(accepted), tuple(rejected))

    def _peer_node_refusal(self, visa: Visa) -> str | None:
        """A peer node is trusted for what it owns: ControlledAccessGrants to its own datasets, nothing else.

        It signs the passports its committees' grants travel in; a ResearcherStatus, or a grant naming
        another node's dataset, is not its to assert (the researcher's own ResearcherStatus travels in the
        passport signed by its issuer, and counts or not on its own).
        """
        if visa.issuer not in self.peer_nodes:
            return None
        if visa.type == CONTROLLED_ACCESS_GRANTS and visa.value.startswith(f"{visa.issuer}/datasets/"):
            return None
        return (
            f"{visa.type} visa of peer node {visa.issuer} refused: it is trusted only for grants to its own "
            f"datasets ({visa.issuer}/datasets/...)"
        )

    def _visa(self, token: object, subject: str, now: float) -> Visa:
        if not isinstance(token, str):
            raise Unauthenticated("visa is not a JWT string")
        claims = self._claims(token, "visa", now, VISA_TYPS, typ_required=False)
        if claims["sub"] != subject:
            raise Unauthenticated("visa names another subject than its passport")
        scope = claims.get("scope")
        if isinstance(scope, str) and "openid" in scope.split() and claims["iat"] + VISA_ACCESS_TOKEN_MAX_AGE < now:
            raise Unauthenticated("visa access token is over an hour old and this node does not poll for it")
        body = claims.get(VISA_CLAIM)
        if not isinstance(body, dict):
            raise Unauthenticated(f"visa has no {VISA_CLAIM} claim")
        asserted = body.get("asserted")
        if not isinstance(asserted, int) or isinstance(asserted, bool) or asserted < 0:
            raise Unauthenticated("visa 'asserted' is not a timestamp in seconds")
        if asserted > now + self.leeway:
            raise Unauthenticated("visa 'asserted' is in the future")
        for key in ("type", "value", "source"):
            if not isinstance(body.get(key), str) or not body[key]:
                raise Unauthenticated(f"visa has no {key!r}")
        by = body.get("by")
        if by is not None and not isinstance(by, str):
            raise Unauthenticated("visa 'by' is not a string")
        return Visa(
            type=body["type"],
            value=body["value"],
            source=body["source"],
            by=by or "",
            asserted=asserted,
            issuer=claims["iss"],
            expires=int(claims["exp"]),
            jti=str(claims.get("jti", "")),
            # Only an absent or empty list means none: a malformed value (``{}``, ``""``, ``0``) is judged, and refused.
            conditions=None if body.get("conditions") in (None, []) else body["conditions"],
            token=token,
        )

    # -- broker access tokens -----------------------------------------------------------------------

    def _access_token(self, token: str, now: float) -> tuple[Identity, float]:
        claims = self._claims(token, "access token", now, ACCESS_TOKEN_TYPS, typ_required=True)
        scope = claims.get("scope")
        scopes = scope.split() if isinstance(scope, str) else []
        if "openid" not in scopes or PASSPORT_CLAIM not in scopes:
            raise Unauthenticated(f"access token is not passport-scoped (scope must hold openid and {PASSPORT_CLAIM})")
        if PASSPORT_CLAIM in claims or VISA_CLAIM in claims:
            raise Unauthenticated("access token carries GA4GH claims, which the AAI profile forbids")
        broker = self.keys.config(claims["iss"])
        subject, expires = claims["sub"], float(claims["exp"])
        if broker.client_id:
            identity, passport_expires = self._passport(self._exchange(broker, token), now)
            if (identity.issuer, identity.subject) != (broker.issuer, subject):
                raise Unauthenticated("the broker's passport names another issuer or subject than the access token")
            return identity, min(expires, passport_expires)
        return self._identity(subject, broker.issuer, self._userinfo(broker, token, subject, now), now), expires

    def _broker_call(self, broker: TrustedIssuer, what: str, method: str, url: str, **options: Any) -> httpx.Response:
        """One call to the broker; its refusal of the token is a 401, anything else that fails a 502."""
        try:
            response = self.keys.http.request(method, url, **options)
        except httpx.HTTPError as error:
            raise BadGateway(f"broker {broker.issuer} did not answer the {what} request: {error}") from error
        if _refuses_token(response, what):
            raise Unauthenticated(f"broker {broker.issuer} refused the access token ({what})")
        if response.status_code != 200:
            raise BadGateway(f"broker {broker.issuer} answered the {what} request with {response.status_code}")
        return response

    def _userinfo(self, broker: TrustedIssuer, token: str, subject: str, now: float) -> list[Any]:
        url = self.keys.endpoint(broker.issuer, "userinfo_endpoint", broker.userinfo_url)
        headers = {**JSON, "Authorization": f"Bearer {token}"}
        response = self._broker_call(broker, "userinfo", "GET", url, headers=headers)
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        try:
            if media == "application/jwt":
                header, _ = _peek(response.text, "userinfo")
                keys = self.keys.key_set(broker.issuer, header.get("kid"))
                body: Any = dict(jwt.decode(response.text, keys, algorithms=ALGORITHMS).claims)
                if body.get("iss") != broker.issuer:
                    raise Unauthenticated("the signed userinfo is not the broker's")
            else:
                body = response.json()
        except (JoseError, ValueError, RecursionError) as error:  # RecursionError: JSON nested too deep
            raise BadGateway(f"broker {broker.issuer} sent an unreadable userinfo response") from error
        if not isinstance(body, dict) or body.get("sub") != subject:
            raise Unauthenticated("the broker's userinfo names another subject than the access token")
        visas = body.get(PASSPORT_CLAIM)
        if not isinstance(visas, list):
            raise Unauthenticated(f"the broker's userinfo has no {PASSPORT_CLAIM} claim")
        return visas

    def _exchange(self, broker: TrustedIssuer, token: str) -> str:
        """RFC 8693 token exchange of the access token for a passport, with this node's client credentials."""
        if broker.client_id is None or broker.client_secret_file is None:
            raise BadGateway(f"this node has no client credentials at broker {broker.issuer}")
        url = self.keys.endpoint(broker.issuer, "token_endpoint", broker.token_url)
        try:
            secret = broker.client_secret_file.read_text().strip()
        except OSError as error:
            raise BadGateway(f"cannot read the client secret for broker {broker.issuer}: {error}") from error
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": token,
            "subject_token_type": ACCESS_TOKEN_TYPE,
            "requested_token_type": PASSPORT_TOKEN_TYPE,
        }
        response = self._broker_call(
            broker, "token exchange", "POST", url, data=form, headers=JSON, auth=(broker.client_id, secret)
        )
        try:
            body = response.json()
        except (ValueError, RecursionError) as error:
            raise BadGateway(f"broker {broker.issuer} sent an unreadable token exchange response") from error
        passport = body.get("access_token") if isinstance(body, dict) else None
        if body.get("issued_token_type") != PASSPORT_TOKEN_TYPE or not isinstance(passport, str):
            raise BadGateway(f"broker {broker.issuer} did not issue a passport in the token exchange")
        return passport


def _refuses_token(response: httpx.Response, what: str) -> bool:
    """Whether the broker refused the caller's token, rather than failed.

    UserInfo answers 401/403 to a bad token (RFC 6750); a token endpoint a 400 ``invalid_grant`` (RFC 6749
    5.2): a 401 there is this node's own client failing to authenticate, a 502, not the caller's fault.
    """
    if what == "userinfo":
        return response.status_code in (401, 403)
    if response.status_code != 400:
        return False
    try:
        body = response.json()
    except (ValueError, RecursionError):
        return False
    return isinstance(body, dict) and body.get("error") in ("invalid_grant", "invalid_token")
