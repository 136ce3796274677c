"""Passport and visa JWT claims (GA4GH AAI 1.2.1): ``aud`` for another service, ``nbf`` and ``iat`` in the future
and a wrong ``typ`` are refused, within a clock leeway the node's settings choose (20 s here).

Each passport is signed by the trusted test issuer and carries a good grant; the attack is in one claim.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import CONTROLLED_ACCESS_GRANTS

from passport_nodes import CONTROLLED, DAC, access, build_node
from processes import Server
from support import TEST_ISSUER

SUBJECT = "frank"
LEEWAY = 20
PASSPORT_TYP, VISA_TYP = "vnd.ga4gh.passport+jwt", "vnd.ga4gh.visa+jwt"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, issuer: VisaIssuer) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("claims")
    server = Server(build_node(root, issuer, leeway_seconds=LEEWAY, audiences=["genoshare-test-node"]), {})
    yield server
    server.stop()


def visa(issuer: VisaIssuer, server: Server, typ: str = VISA_TYP, **claims: Any) -> str:
    now = int(time.time())
    body = {
        "type": CONTROLLED_ACCESS_GRANTS,
        "value": f"{server.url}/datasets/{CONTROLLED}",
        "source": DAC,
        "by": "dac",
        "asserted": now - 60,
    }
    base = {"iss": TEST_ISSUER, "sub": SUBJECT, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4())}
    return issuer.sign({**base, "ga4gh_visa_v1": body, **claims}, typ=typ)


def passport(issuer: VisaIssuer, visas: list[str], typ: str = PASSPORT_TYP, **claims: Any) -> str:
    now = int(time.time())
    base = {"iss": TEST_ISSUER, "sub": SUBJECT, "iat": now, "exp": now + 600, "jti": str(uuid.uuid4())}
    return issuer.sign({**base, "ga4gh_passport_v1": visas, **claims}, typ=typ)


def test_passport_claims_outside_what_the_aai_allows_are_refused(issuer: VisaIssuer, server: Server) -> None:
    good, now = [visa(issuer, server)], int(time.time())
    for accepted in (
        passport(issuer, good),
        passport(issuer, good, aud=server.url),
        passport(issuer, good, aud=["https://other.example.org", "genoshare-test-node"]),
        passport(issuer, good, nbf=now - 10),
        passport(issuer, good, iat=now + LEEWAY // 2),  # clock skew within the leeway
        passport(issuer, good, typ="application/vnd.ga4gh.passport+JWT"),  # RFC 7515 4.1.9 spelling
    ):
        assert access(server.url, CONTROLLED, accepted).status_code == 200
    for attack in (
        passport(issuer, good, aud="https://other-service.example.org"),
        passport(issuer, good, aud=["https://other-service.example.org"]),
        passport(issuer, good, nbf=now + 3600),
        passport(issuer, good, nbf=now + 2 * LEEWAY),
        passport(issuer, good, iat=now + 3600),
        passport(issuer, good, iat=now + 2 * LEEWAY),
        passport(issuer, good, iat=None),
        passport(issuer, good, typ="JWT"),
        passport(issuer, good, typ="at+jwt"),
        passport(issuer, good, typ=VISA_TYP),
    ):
        answer = access(server.url, CONTROLLED, attack)
        assert answer.status_code == 401, answer.text


def test_visa_claims_outside_what_the_aai_allows_drop_the_visa(issuer: VisaIssuer, server: Server) -> None:
    now = int(time.time())
    for accepted in (visa(issuer, server, typ="JWT"), visa(issuer, server, aud=server.url)):
        assert access(server.url, CONTROLLED, passport(issuer, [accepted])).status_code == 200
    for attack in (
        visa(issuer, server, aud="https://other-service.example.org"),
        visa(issuer, server, nbf=now + 3600),
        visa(issuer, server, iat=now + 3600),
        visa(issuer, server, typ=PASSPORT_TYP),
        visa(issuer, server, typ="text/plain"),
        visa(issuer, server, scope="openid ga4gh_passport_v1", iat=now - 7200),  # an unpolled visa access token
    ):
        assert access(server.url, CONTROLLED, passport(issuer, [attack])).status_code == 403
