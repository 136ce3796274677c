"""Which visas count (GA4GH Passport 1.2.1 ``by``, ``source``, ``value``, ``asserted``), attacked through a real
``genoshare serve``: self-asserted or unknown researcher status, grants from the wrong DAC or authority, bare
dataset ids, and ``asserted`` values that are not timestamps.

The node trusts the test issuer's signatures; by default it counts ResearcherStatus by a signing official,
system or peer for the Registered Access standard, and ControlledAccessGrants by a DAC it lists (``DAC``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS

from passport_nodes import CONTROLLED, DAC, REGISTERED, access, build_node, researcher_visa
from processes import Server
from support import TEST_ISSUER

SUBJECT = "erin"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, issuer: VisaIssuer) -> Iterator[Server]:
    server = Server(build_node(tmp_path_factory.mktemp("policy"), issuer), {})
    yield server
    server.stop()


def status(server: Server, dataset: str, passport: str) -> int:
    return access(server.url, dataset, passport).status_code


def test_only_an_accepted_researcher_status_opens_a_registered_dataset(issuer: VisaIssuer, server: Server) -> None:
    for by in ("so", "system", "peer"):
        assert status(server, REGISTERED, issuer.passport(SUBJECT, [researcher_visa(issuer, SUBJECT, by=by)])) == 200
    for refused in (
        researcher_visa(issuer, SUBJECT, by="self"),  # self-asserted
        researcher_visa(issuer, SUBJECT, by=None),  # no 'by': unknown authority
        researcher_visa(issuer, SUBJECT, by="dac"),
        issuer.visa(SUBJECT, RESEARCHER_STATUS, "https://example.org/anyone-who-asks", by="so"),  # another standard
    ):
        assert status(server, REGISTERED, issuer.passport(SUBJECT, [refused])) == 403


def test_a_self_asserted_researcher_cannot_file_access_requests(issuer: VisaIssuer, server: Server) -> None:
    request = {"datasets": [CONTROLLED], "purpose": {"primary": "GRU"}, "project_title": "p", "institution": "i"}

    def file(by: str) -> int:
        passport = issuer.passport(SUBJECT, [researcher_visa(issuer, SUBJECT, by=by)])
        headers = {"Authorization": f"Bearer {passport}"}
        return httpx.post(f"{server.url}/governance/requests", headers=headers, json=request, timeout=30).status_code

    assert file("self") == 403
    assert file("so") == 201


def grant(issuer: VisaIssuer, server: Server, **options: object) -> str:
    value = options.pop("value", f"{server.url}/datasets/{CONTROLLED}")
    return issuer.visa(SUBJECT, CONTROLLED_ACCESS_GRANTS, value, **{"source": DAC, **options})  # type: ignore[arg-type]


def test_a_grant_counts_only_from_a_listed_dac_by_dac(issuer: VisaIssuer, server: Server) -> None:
    assert status(server, CONTROLLED, issuer.passport(SUBJECT, [grant(issuer, server)])) == 200  # control
    for refused in (
        grant(issuer, server, source=TEST_ISSUER),  # a DAC this node does not list
        grant(issuer, server, source="https://dac.test.genoshare.invalid/committees/10"),
        grant(issuer, server, by="so"),
        grant(issuer, server, by="self"),
        grant(issuer, server, by=None),
    ):
        assert status(server, CONTROLLED, issuer.passport(SUBJECT, [refused])) == 403


def test_a_grant_must_name_the_dataset_by_its_url_on_this_node(issuer: VisaIssuer, server: Server) -> None:
    for value in (CONTROLLED, f"https://other-node.example.org/datasets/{CONTROLLED}", f"{server.url}/{CONTROLLED}"):
        assert status(server, CONTROLLED, issuer.passport(SUBJECT, [grant(issuer, server, value=value)])) == 403


def test_asserted_must_be_an_integer_timestamp_not_in_the_future(issuer: VisaIssuer, server: Server) -> None:
    now = int(time.time())
    for asserted in (True, str(now), float(now), -1, now + 3600):
        passport = issuer.passport(SUBJECT, [grant(issuer, server, asserted=asserted)])
        assert status(server, CONTROLLED, passport) == 403, asserted
    assert status(server, CONTROLLED, issuer.passport(SUBJECT, [grant(issuer, server, asserted=now - 86400)])) == 200
