"""Who sees and decides access requests, attacked through ``genoshare serve``.

The node's command line used to act under the subject ``steward@cli``, and the API compared the caller's
``subject@issuer`` with that string: a passport for subject ``steward`` from an issuer named ``cli`` (or
any issuer whose name makes the same string) saw every request and decided for every committee. Stewards
are now configured accounts (``roles.stewards``) and the command line an explicit operator no request can
become. Here two datasets have their own committees and two researchers their own requests: nobody sees
or decides what is not theirs, and a configured steward (the control) does both.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import RESEARCHER_STATUS
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, init_node
from genoshare.settings import TrustedIssuer, load_settings

from support import TEST_ISSUER

REQUESTS = "/governance/requests"
#: An issuer the node trusts whose name, with the subject "steward", spells the old magic steward.
CLI_ISSUER = "cli"


@pytest.fixture
def cli_issuer(tmp_path: Path) -> VisaIssuer:
    return VisaIssuer.load_or_create(CLI_ISSUER, tmp_path / "cli-issuer" / "key.jwk.json")


@pytest.fixture
def roles_node(tmp_path: Path, database_url: str, issuer: VisaIssuer, cli_issuer: VisaIssuer) -> Iterator[Node]:
    issuer.write_jwks(tmp_path / "issuer.jwks.json")
    cli_issuer.write_jwks(tmp_path / "cli.jwks.json")
    settings = load_settings(
        tmp_path / "node",
        database_url=database_url,
        trusted_issuers=[
            TrustedIssuer(issuer=TEST_ISSUER, jwks_file=tmp_path / "issuer.jwks.json"),
            TrustedIssuer(issuer=CLI_ISSUER, jwks_file=tmp_path / "cli.jwks.json"),
        ],
        roles={"stewards": [{"subject": "data-steward", "issuer": TEST_ISSUER}]},
    )
    node = init_node(settings)
    datasets = DatasetService(node.database)
    for name in ("heart", "lung"):
        datasets.create(
            NewDataset(id=name, title=name, custodian="Hospital", access_level="controlled", duo_codes=["GRU"])
        )
        datasets.set_committee(name, [f"{name}-chair@{TEST_ISSUER}"], auto_approve=False)
    yield node
    node.close()


def caller(issuer: VisaIssuer, subject: str) -> dict[str, str]:
    visa = issuer.visa(subject, RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so")
    return {"Authorization": f"Bearer {issuer.passport(subject, [visa])}"}


def test_requests_are_seen_and_decided_only_by_their_requester_committee_and_stewards(
    roles_node: Node, issuer: VisaIssuer, cli_issuer: VisaIssuer, serve: Any
) -> None:
    server = serve(roles_node.settings.data_dir, {"GENOSHARE_DATABASE_URL": roles_node.settings.database_url})
    with httpx.Client(base_url=server.url, timeout=30) as http:

        def submit(subject: str, dataset: str) -> str:
            body = {
                "datasets": [dataset],
                "purpose": {"primary": "HMB"},
                "project_title": f"{subject}'s project",
                "institution": "University",
            }
            response = http.post(REQUESTS, json=body, headers=caller(issuer, subject))
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "pending"
            return str(response.json()["id"])

        alice, bob = submit("alice", "heart"), submit("bob", "lung")

        def seen(headers: dict[str, str]) -> set[str]:
            response = http.get(REQUESTS, headers=headers)
            assert response.status_code == 200, response.text
            return {request["id"] for request in response.json()}

        def approve(request_id: str, headers: dict[str, str]) -> int:
            return http.post(f"{REQUESTS}/{request_id}/approve", json={}, headers=headers).status_code

        old_steward = caller(cli_issuer, "steward")  # actor "steward@cli", the old magic subject
        claims_it = caller(issuer, "steward@cli")
        steward_elsewhere = caller(cli_issuer, "data-steward")  # the steward's subject, at another issuer
        for outsider in (old_steward, claims_it, steward_elsewhere):
            assert seen(outsider) == set()
            assert http.get(f"{REQUESTS}/{alice}", headers=outsider).status_code == 404
            assert approve(alice, outsider) == 403
            reject = http.post(f"{REQUESTS}/{bob}/reject", json={"reason": "no"}, headers=outsider)
            assert reject.status_code == 403
            assert http.get("/governance/datasets/heart/usage", headers=outsider).status_code == 403

        # A researcher sees their own request only, and decides none.
        assert seen(caller(issuer, "bob")) == {bob}
        assert http.get(f"{REQUESTS}/{alice}", headers=caller(issuer, "bob")).status_code == 404
        assert approve(bob, caller(issuer, "bob")) == 403

        # A committee member sees and decides their dataset's requests, not another committee's.
        lung_chair = caller(issuer, "lung-chair")
        assert seen(lung_chair) == {bob}
        assert http.get(f"{REQUESTS}/{alice}", headers=lung_chair).status_code == 404
        assert approve(alice, lung_chair) == 403
        assert http.get("/governance/datasets/heart/usage", headers=lung_chair).status_code == 403
        assert http.get(f"{REQUESTS}/{alice}", headers=caller(issuer, "alice")).json()["status"] == "pending"

        # The control: the configured steward sees both and decides for either committee.
        steward = caller(issuer, "data-steward")
        assert seen(steward) == {alice, bob}
        assert approve(alice, steward) == 200
        decided = http.get(f"{REQUESTS}/{alice}", headers=caller(issuer, "alice")).json()
        assert (decided["status"], decided["decided_by"]) == ("approved", f"data-steward@{TEST_ISSUER}")
        assert approve(bob, lung_chair) == 200
