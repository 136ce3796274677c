"""Visa ``conditions`` (GA4GH Passport 1.2.1): a grant whose conditions the passport does not meet opens nothing.

Each attack asks a real ``genoshare serve`` for a DRS access URL of a controlled file with a passport whose
ControlledAccessGrants visa is otherwise good (the control case shows it opens the file).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS

from passport_nodes import CONTROLLED, DAC, access, build_node, researcher_visa
from processes import Server
from support import TEST_ISSUER

SUBJECT = "carol"
UNI = "https://uni.example.org"
AFFILIATION = "AffiliationAndRole"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, issuer: VisaIssuer) -> Iterator[Server]:
    # No clock leeway on this node, so that a visa a grant relies on can expire within the test.
    server = Server(build_node(tmp_path_factory.mktemp("conditions"), issuer, leeway_seconds=0), {})
    yield server
    server.stop()


def grant(issuer: VisaIssuer, server: Server, conditions: object = None) -> str:
    value = f"{server.url}/datasets/{CONTROLLED}"
    return issuer.visa(SUBJECT, CONTROLLED_ACCESS_GRANTS, value, source=DAC, conditions=conditions)  # type: ignore[arg-type]


def affiliation(issuer: VisaIssuer, value: str, **options: object) -> str:
    return issuer.visa(SUBJECT, AFFILIATION, value, **{"by": "so", "source": UNI, **options})  # type: ignore[arg-type]


def status(issuer: VisaIssuer, server: Server, *visas: str) -> int:
    return access(server.url, CONTROLLED, issuer.passport(SUBJECT, list(visas))).status_code


def test_a_grant_whose_conditions_are_not_met_opens_nothing(issuer: VisaIssuer, server: Server) -> None:
    faculty = affiliation(issuer, "faculty@uni.example.org")
    assert status(issuer, server, grant(issuer, server), faculty) == 200  # control: the grant itself is good
    unmet = [[{"type": AFFILIATION, "value": "const:faculty@nowhere.invalid"}]]
    assert status(issuer, server, grant(issuer, server, unmet), faculty) == 403
    assert status(issuer, server, grant(issuer, server, unmet)) == 403


def test_conditions_met_by_another_visa_of_the_passport_open_the_file(issuer: VisaIssuer, server: Server) -> None:
    faculty = affiliation(issuer, "faculty@uni.example.org")
    for value in ("const:faculty@uni.example.org", "pattern:faculty@*.example.org", "pattern:f?culty@*"):
        assert status(issuer, server, grant(issuer, server, [[{"type": AFFILIATION, "value": value}]]), faculty) == 200
    either = [
        [{"type": AFFILIATION, "value": "const:faculty@nowhere.invalid"}],  # OR
        [{"type": AFFILIATION, "value": "pattern:*@uni.example.org", "source": f"const:{UNI}", "by": "const:so"}],
    ]
    assert status(issuer, server, grant(issuer, server, either), faculty) == 200
    linked = issuer.visa(SUBJECT, "LinkedIdentities", "001,https%3A%2F%2Fa.org;123,https%3A%2F%2Fexample2.org")
    split = [[{"type": "LinkedIdentities", "value": "split_pattern:123,https%3A%2F%2Fexample?.org"}]]
    assert status(issuer, server, grant(issuer, server, split), linked) == 200
    assert status(issuer, server, grant(issuer, server, [[{**split[0][0], "value": "pattern:123,*"}]]), linked) == 403


def test_each_clause_must_match_one_visa_and_every_clause_of_an_alternative_must_match(
    issuer: VisaIssuer, server: Server
) -> None:
    # value matches one AffiliationAndRole visa and by another: no single visa matches the clause.
    faculty_so = affiliation(issuer, "faculty@uni.example.org", by="so")
    student_system = affiliation(issuer, "student@uni.example.org", by="system")
    clause = {"type": AFFILIATION, "value": "const:faculty@uni.example.org", "by": "const:system"}
    assert status(issuer, server, grant(issuer, server, [[clause]]), faculty_so, student_system) == 403
    faculty_clause = {"type": AFFILIATION, "value": "const:faculty@uni.example.org"}
    both = [[faculty_clause, {"type": RESEARCHER_STATUS, "by": "const:so"}]]
    assert status(issuer, server, grant(issuer, server, both), faculty_so) == 403
    assert status(issuer, server, grant(issuer, server, both), faculty_so, researcher_visa(issuer, SUBJECT)) == 200


def test_only_accepted_visas_without_conditions_meet_a_condition(
    issuer: VisaIssuer, server: Server, tmp_path: Path
) -> None:
    needs_faculty = [[{"type": AFFILIATION, "value": "const:faculty@uni.example.org"}]]
    stranger = VisaIssuer.load_or_create(TEST_ISSUER, tmp_path / "stranger.jwk")  # same name, another key
    conditional = issuer.visa(SUBJECT, AFFILIATION, "faculty@uni.example.org", by="so", conditions=needs_faculty)
    for supporting in (
        stranger.visa(SUBJECT, AFFILIATION, "faculty@uni.example.org", by="so"),  # forged
        affiliation(issuer, "faculty@uni.example.org", lifetime=-10),  # expired
        issuer.visa("someone-else", AFFILIATION, "faculty@uni.example.org", by="so"),  # another person's
        conditional,  # itself conditional: no nesting
    ):
        assert status(issuer, server, grant(issuer, server, needs_faculty), supporting) == 403


def test_conditions_the_node_cannot_evaluate_refuse_the_visa(issuer: VisaIssuer, server: Server) -> None:
    faculty = affiliation(issuer, "faculty@uni.example.org")
    for conditions in (
        [[{"type": AFFILIATION, "value": "regex:faculty@.*"}]],  # unknown match type
        [[{"type": AFFILIATION, "value": "faculty@uni.example.org"}]],  # no match type
        [[{"type": AFFILIATION, "asserted": "const:1"}]],  # a timestamp claim
        [[{"type": AFFILIATION, "value": "const:faculty@uni.example.org", "idp": "const:x"}]],  # unknown claim
        [[{"value": "const:faculty@uni.example.org"}]],  # no type
        [[{"type": AFFILIATION}]],  # nothing to match
        [[]],
        {"type": AFFILIATION, "value": "const:faculty@uni.example.org"},  # not a list of lists
        # Malformed but falsy: not "no conditions" (they were taken as absent and the grant opened the file).
        {},
        "",
        0,
        False,
    ):
        assert status(issuer, server, grant(issuer, server, conditions), faculty) == 403, conditions


def test_a_grant_lapses_when_the_visa_its_conditions_rely_on_expires(issuer: VisaIssuer, server: Server) -> None:
    needs_faculty = [[{"type": AFFILIATION, "value": "const:faculty@uni.example.org"}]]
    passport = issuer.passport(
        SUBJECT, [grant(issuer, server, needs_faculty), affiliation(issuer, "faculty@uni.example.org", lifetime=2)]
    )
    assert access(server.url, CONTROLLED, passport).status_code == 200
    time.sleep(3.1)
    assert access(server.url, CONTROLLED, passport).status_code == 403
