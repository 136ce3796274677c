"""The AAI broker flow against a real broker process (``broker.py``, real ES256 tokens over loopback HTTP).

A researcher's client sends the node the broker's passport-scoped access token, as LS Login and ELIXIR AAI
issue them; the node, a Passport Clearinghouse, gets the visas from the broker's UserInfo endpoint, or by
RFC 8693 token exchange where it is the broker's client. Keys come from the broker's OIDC discovery, are
refetched when the broker rotates them (rate-limited against forged ``kid`` values), over one kept-alive
HTTP client.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import CONTROLLED_ACCESS_GRANTS
from genoshare.settings import TrustedIssuer

from passport_nodes import CONTROLLED, DAC, REGISTERED, BrokerProcess, access, build_node, researcher_visa
from processes import Server

AUDIENCE = "genoshare-test-node"
Brokers = tuple[BrokerProcess, BrokerProcess, BrokerProcess]
CLIENT_ID, CLIENT_SECRET = "genoshare-node", "s3cret-for-tests"
REFETCH = 1.0


@pytest.fixture(scope="module")
def brokers() -> Iterator[tuple[BrokerProcess, BrokerProcess, BrokerProcess]]:
    """One for the UserInfo flow, one for token exchange, one to go away."""
    started = BrokerProcess(), BrokerProcess(CLIENT_ID, CLIENT_SECRET), BrokerProcess()
    yield started
    for broker in started:
        broker.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, issuer: VisaIssuer, brokers: Brokers) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("broker")
    secret = root / "client-secret"
    secret.write_text(CLIENT_SECRET)
    trusted = [
        TrustedIssuer(issuer=brokers[0].url, broker=True),  # keys and endpoints from its OIDC discovery
        TrustedIssuer(issuer=brokers[1].url, broker=True, client_id=CLIENT_ID, client_secret_file=secret),
        TrustedIssuer(issuer=brokers[2].url, broker=True),
    ]
    data_dir = build_node(root, issuer, brokers=trusted, audiences=[AUDIENCE], jwks_refetch_seconds=REFETCH)
    server = Server(data_dir, {})
    yield server
    server.stop()


def visas(issuer: VisaIssuer, server: Server, subject: str) -> list[str]:
    grant = f"{server.url}/datasets/{CONTROLLED}"
    return [researcher_visa(issuer, subject), issuer.visa(subject, CONTROLLED_ACCESS_GRANTS, grant, source=DAC)]


def login(broker: BrokerProcess, issuer: VisaIssuer, server: Server, subject: str, **options: object) -> str:
    claims = {"aud": ["researcher-app", AUDIENCE], **options.pop("claims", {})}  # type: ignore[dict-item]
    return broker.login(subject, visas(issuer, server, subject), claims=claims, **options)


def test_an_access_token_of_a_trusted_broker_brings_the_visas_from_its_userinfo(
    issuer: VisaIssuer, server: Server, brokers: Brokers
) -> None:
    broker = brokers[0]
    broker.reset_calls()
    token = login(broker, issuer, server, "dave")
    assert access(server.url, CONTROLLED, token).status_code == 200
    assert access(server.url, REGISTERED, token).status_code == 200
    assert len(broker.calls("userinfo")) == 1  # the second request found the token's visas in memory
    no_grant = broker.login("dave", [researcher_visa(issuer, "dave")], claims={"aud": AUDIENCE})
    assert access(server.url, CONTROLLED, no_grant).status_code == 403
    assert access(server.url, REGISTERED, no_grant).status_code == 200


def test_access_tokens_the_node_must_refuse(issuer: VisaIssuer, server: Server, brokers: Brokers) -> None:
    broker, now = brokers[0], int(time.time())
    for attack in (
        login(broker, issuer, server, "eve", claims={"aud": ["https://other-service.example.org"]}),
        login(broker, issuer, server, "eve", claims={"exp": now - 3600, "iat": now - 7200}),
        login(broker, issuer, server, "eve", claims={"iat": now + 3600}),
        login(broker, issuer, server, "eve", claims={"nbf": now + 3600}),
        login(broker, issuer, server, "eve", claims={"scope": "openid profile"}),  # not passport-scoped
        login(broker, issuer, server, "eve", typ="vnd.ga4gh.visa+jwt"),
        login(broker, issuer, server, "eve", rogue_key=True),  # not the broker's key
        login(broker, issuer, server, "eve", claims={"iss": "https://unknown-broker.example.org"}),
    ):
        answer = access(server.url, CONTROLLED, attack)
        assert answer.status_code == 401, answer.text
    revoked = login(broker, issuer, server, "eve")
    broker.revoke(revoked)  # the broker's userinfo now refuses it
    answer = access(server.url, CONTROLLED, revoked)
    assert answer.status_code == 401
    assert "refused the access token" in answer.json()["msg"]


def test_the_broker_visas_pass_the_same_policy_as_a_passports(
    issuer: VisaIssuer, server: Server, brokers: Brokers
) -> None:
    conditional = issuer.visa(
        "gina",
        CONTROLLED_ACCESS_GRANTS,
        f"{server.url}/datasets/{CONTROLLED}",
        source=DAC,
        conditions=[[{"type": "AffiliationAndRole", "value": "const:faculty@nowhere.invalid"}]],
    )
    token = brokers[0].login(
        "gina", [researcher_visa(issuer, "gina", by="self"), conditional], claims={"aud": AUDIENCE}
    )
    assert access(server.url, CONTROLLED, token).status_code == 403
    assert access(server.url, REGISTERED, token).status_code == 403


def test_token_exchange_at_a_broker_the_node_is_a_client_of(
    issuer: VisaIssuer, server: Server, brokers: Brokers
) -> None:
    broker = brokers[1]
    broker.reset_calls()
    token = login(broker, issuer, server, "hank")
    assert access(server.url, CONTROLLED, token).status_code == 200
    assert [call["endpoint"] for call in broker.calls() if call["endpoint"] in ("token", "userinfo")] == ["token"]
    revoked = login(broker, issuer, server, "hank")
    broker.revoke(revoked)  # the token endpoint answers invalid_grant
    assert access(server.url, CONTROLLED, revoked).status_code == 401


def test_an_unknown_kid_refetches_the_keys_at_a_limited_rate(
    issuer: VisaIssuer, server: Server, brokers: Brokers
) -> None:
    broker = brokers[0]
    assert access(server.url, CONTROLLED, login(broker, issuer, server, "ivan")).status_code == 200
    time.sleep(REFETCH + 0.1)
    broker.reset_calls()
    forged = [login(broker, issuer, server, "ivan", rogue_key=True) for _ in range(30)]
    started = time.monotonic()
    assert all(access(server.url, CONTROLLED, token).status_code == 401 for token in forged)
    allowed = 1 + int((time.monotonic() - started) / REFETCH)  # one refetch per REFETCH seconds at most
    assert 1 <= len(broker.calls("jwks")) <= allowed < 30
    broker.rotate()
    time.sleep(REFETCH + 0.1)
    assert access(server.url, CONTROLLED, login(broker, issuer, server, "ivan")).status_code == 200


def test_the_node_talks_to_a_broker_over_one_kept_alive_connection(
    issuer: VisaIssuer, server: Server, brokers: Brokers
) -> None:
    broker = brokers[0]
    broker.reset_calls()
    for n in range(8):
        assert access(server.url, CONTROLLED, login(broker, issuer, server, f"judy-{n}")).status_code == 200
    calls = broker.calls("userinfo")
    assert len(calls) == 8
    assert len({call["peer"] for call in calls}) == 1, "each request opened a connection of its own"


def test_a_broker_that_does_not_answer_is_a_502_not_a_401(server: Server, brokers: Brokers) -> None:
    broker = brokers[2]
    token = broker.login("kim", [], claims={"aud": AUDIENCE})
    broker.stop()
    answer = access(server.url, CONTROLLED, token)
    assert answer.status_code == 502
    assert broker.url in answer.json()["msg"]
