"""Roles as tables: who submits, sees and decides access requests, who is a steward, whose consent a token is.

Built from ``genoshare.access`` alone (``Roles``, ``RequestAccess``, ``ConsentTokens``) over one database:
two datasets with their own committee, three researchers' requests, and the callers a steward would list
when asking "who can see this request, and who can approve it".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from genoshare.access.consent_tokens import ConsentTokens, new_token
from genoshare.access.passports import RESEARCHER_STATUS, Identity, Visa
from genoshare.access.requests import RequestAccess
from genoshare.access.roles import Caller, Operator, Roles
from genoshare.errors import NotFound, PermissionDenied, Unauthenticated
from genoshare.settings import Account, TrustedIssuer, load_settings
from genoshare.store.db import Database, migrate
from genoshare.store.models import AccessRequest, Dataset, Participant

BROKER = "https://login.example.org"
OTHER_BROKER = "https://other-login.example.org"
STEWARD = Account(subject="data-steward", issuer=BROKER)


def person(subject: str, issuer: str = BROKER, *, researcher: bool = True) -> Identity:
    visa = Visa(RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", BROKER, "so", 0, BROKER, 2**31, "v")
    return Identity(subject, issuer, (visa,) if researcher else ())


CALLERS: dict[str, Caller] = {
    "alice (requested heart)": person("alice"),
    "bob (requested lung)": person("bob"),
    "heart committee": person("heart-chair"),
    "lung committee": person("lung-chair"),
    "configured steward": person("data-steward"),
    "steward's subject at another issuer": person("data-steward", OTHER_BROKER),
    "the old magic steward subject": person("steward", "cli"),
    "a subject spelling it": person("steward@cli", BROKER),
    "the operator (command line)": Operator("root"),
}

#: caller -> (requests they see, datasets whose requests they decide)
EXPECTED: dict[str, tuple[set[str], set[str]]] = {
    "alice (requested heart)": ({"alice-heart"}, set()),
    "bob (requested lung)": ({"bob-lung", "bob-both"}, set()),
    "heart committee": ({"alice-heart", "bob-both"}, {"heart"}),
    "lung committee": ({"bob-lung", "bob-both"}, {"lung"}),
    "configured steward": ({"alice-heart", "bob-lung", "bob-both"}, {"heart", "lung"}),
    "steward's subject at another issuer": (set(), set()),
    "the old magic steward subject": (set(), set()),
    "a subject spelling it": (set(), set()),
    "the operator (command line)": ({"alice-heart", "bob-lung", "bob-both"}, {"heart", "lung"}),
}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path_factory.mktemp('roles') / 'roles.db'}")
    migrate(database.engine)
    with database.session() as session:
        for name in ("heart", "lung"):
            session.add(Dataset(id=name, title=name, custodian="c", access_level="controlled",
                                committee=[f"{name}-chair@{BROKER}"]))  # fmt: skip
    with database.session() as session:
        for request_id, requester, datasets in (
            ("alice-heart", "alice", ["heart"]),
            ("bob-lung", "bob", ["lung"]),
            ("bob-both", "bob", ["heart", "lung"]),
        ):
            session.add(AccessRequest(id=request_id, requester=f"{requester}@{BROKER}", datasets=datasets,
                                      purpose={}, project_title="p", institution="i"))  # fmt: skip
    yield database
    database.dispose()


@pytest.fixture(scope="module")
def access(database: Database) -> RequestAccess:
    return RequestAccess(database, Roles(database, [STEWARD]))


@pytest.mark.parametrize("who", CALLERS)
def test_who_sees_which_request(access: RequestAccess, who: str) -> None:
    caller, (expected, _) = CALLERS[who], EXPECTED[who]
    assert {request.id for request in access.visible(caller)} == expected
    for request_id in ("alice-heart", "bob-lung", "bob-both"):
        if request_id in expected:
            assert access.visible_one(caller, request_id).id == request_id
        else:
            with pytest.raises(NotFound, match="no access request"):  # as if it did not exist
                access.visible_one(caller, request_id)


@pytest.mark.parametrize("who", CALLERS)
def test_who_decides_for_which_committee(access: RequestAccess, who: str) -> None:
    caller, (_, decides) = CALLERS[who], EXPECTED[who]
    for datasets in (["heart"], ["lung"], ["heart", "lung"]):
        if set(datasets) <= decides:
            access.require_decider(caller, datasets)
        else:
            with pytest.raises(PermissionDenied, match="not on the access committee"):
                access.require_decider(caller, datasets)


def test_only_stewards_are_stewards(access: RequestAccess) -> None:
    stewards = {who for who, caller in CALLERS.items() if access.roles.is_steward(caller)}
    assert stewards == {"configured steward", "the operator (command line)"}
    assert access.roles.is_steward(None) is False
    assert access.roles.committees_of(CALLERS["heart committee"]) == {"heart"}


def test_a_pending_status_filter_and_an_unknown_dataset(access: RequestAccess) -> None:
    assert access.visible(CALLERS["configured steward"], "approved") == []
    with pytest.raises(NotFound, match="no dataset 'lungs'"):
        access.require_decider(CALLERS["lung committee"], ["lungs"])


@pytest.mark.parametrize(
    ("who", "allowed"),
    [
        (person("alice"), True),
        (person("alice", researcher=False), False),
        (person("data-steward", researcher=False), False),  # a steward submits as a researcher, or not at all
    ],
)
def test_only_registered_researchers_submit_requests(who: Identity, allowed: bool) -> None:
    if allowed:
        RequestAccess.require_submitter(who)
    else:
        with pytest.raises(PermissionDenied, match="ResearcherStatus"):
            RequestAccess.require_submitter(who)


def test_the_operator_is_named_so_no_passport_holder_is(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOGNAME", "ops@example")
    monkeypatch.setenv("USER", "ops@example")
    operator = Operator.at_command_line()
    assert operator.actor == "operator:ops_example"
    assert "@" not in operator.actor  # every passport holder's name is subject@issuer


def test_a_consent_token_speaks_for_its_participant_only(database: Database) -> None:
    tokens = ConsentTokens(database)
    mine, theirs = new_token(), new_token()
    with database.session() as session:
        session.add(Participant(dataset_id="heart", pseudonym="p1", source_key="s1", token_hash=mine.stored_hash))
        session.add(Participant(dataset_id="heart", pseudonym="p2", source_key="s2", token_hash=theirs.stored_hash))
    assert tokens.participant(mine.secret).pseudonym == "p1"
    assert tokens.participant(theirs.secret).pseudonym == "p2"
    assert mine.secret not in (mine.stored_hash, theirs.stored_hash)  # the secret itself is never stored
    missing, unknown = "send your consent token", "unknown consent token"
    for wrong, message in ((None, missing), ("", missing), (mine.stored_hash, unknown), ("guess", unknown)):
        with pytest.raises(Unauthenticated, match=message):
            tokens.participant(wrong)


@pytest.mark.parametrize(
    ("issuer", "refused"),
    [
        (BROKER, False),
        ("https://not-trusted.example.org", True),
        ("http://127.0.0.1:8080", True),  # the node's own passports name whoever holds its grants
    ],
)
def test_a_steward_must_sign_in_through_a_trusted_issuer(tmp_path: Path, issuer: str, refused: bool) -> None:
    options = {
        "trusted_issuers": [
            TrustedIssuer(issuer=BROKER, jwks_url=f"{BROKER}/jwks"),
            TrustedIssuer(issuer="http://127.0.0.1:8080", jwks_url="http://127.0.0.1:8080/jwks"),
        ],
        "roles": {"stewards": [{"subject": "data-steward", "issuer": issuer}]},
    }
    if not refused:
        assert load_settings(tmp_path, **options).roles.stewards == [Account(subject="data-steward", issuer=issuer)]
        return
    with pytest.raises(ValidationError, match=r"roles\.stewards: 'data-steward'"):
        load_settings(tmp_path, **options)
