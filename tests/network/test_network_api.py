"""``/network/api`` of a node without peers: the node's own answer, and the Beacon errors of ``/api``.

Runs on both databases (``client``); the network of real nodes is ``test_network_nodes.py``.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx
from beacon_schemas import BY_GRANULARITY, assert_valid, framework
from fastapi.testclient import TestClient

from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node

from support import Passports, bearer


def test_a_node_alone_answers_the_network_query_itself(client: TestClient) -> None:
    response = client.get("/network/api/g_variants", params={"referenceName": "20", "start": "100"})
    assert response.status_code == 200, response.text
    document = response.json()
    assert_valid(document, framework(BY_GRANULARITY[document["meta"]["returnedGranularity"]]))
    [node] = document["info"]["network"]["nodes"]
    assert node["status"] == "answered" and node["passport"] == "none given"
    assert "notAnswered" not in document["info"]["network"] and "beaconHandovers" not in document


def test_bad_requests_are_beacon_errors_before_anyone_is_asked(client: TestClient) -> None:
    for path, status in [
        ("/network/api/g_variants?start=notanumber", 400),
        ("/network/api/nosuchentry", 404),
        ("/network/api/individuals/x/nosuchrelation", 404),
        ("/network/api/individuals/filtering_terms", 404),  # not an individual's id, as on /api
    ]:
        response = client.get(path)
        assert response.status_code == status, (path, response.text)
        assert_valid(response.json(), framework("beaconErrorResponse"))
    for about in ("info", "map", "entry_types", "configuration", "filtering_terms"):  # what the network says of itself
        not_posted = client.post(f"/network/api/{about}", json={})
        assert not_posted.status_code == 405 and not_posted.headers["Allow"] == "GET", (about, not_posted.text)
    posted = client.post("/network/api/g_variants", json={"meta": {}})
    assert posted.status_code == 400
    assert_valid(posted.json(), framework("beaconErrorResponse"))


def test_a_network_request_naming_an_unknown_node_is_refused(client: TestClient, passports: Passports) -> None:
    body = {
        "datasets": ["https://stranger.example.org/datasets/x"],
        "purpose": {"primary": "GRU"},
        "project_title": "P",
        "institution": "I",
    }
    assert client.post("/network/governance/requests", json=body).status_code == 401
    response = client.post("/network/governance/requests", json=body, headers=bearer(passports.anonymous_researcher()))
    assert response.status_code == 400
    assert "not a node of this network" in response.text


def test_a_forged_passport_is_refused_and_audited_as_on_api(client: TestClient, node: Node) -> None:
    """With no node to take it, a passport nobody trusts is the 401 ``/api`` gives, written to the audit log."""
    forged = VisaIssuer.load_or_create("https://forger.example.org", node.settings.data_dir / "forger.jwk")
    token = Passports(forged, subject="mallory").anonymous_researcher()
    response = client.get("/network/api/g_variants", params={"referenceName": "20"}, headers=bearer(token))
    assert response.status_code == 401
    assert_valid(response.json(), framework("beaconErrorResponse"))
    client.app.state.denials.flush()  # type: ignore[attr-defined]
    refusals = [e for e in node.audit.entries() if e.decision == "deny" and e.resource == "/network/api/g_variants"]
    assert refusals and "does not trust" in str(refusals[0].reason)


def test_a_part_sent_again_under_its_key_is_made_once(client: TestClient, node: Node, passports: Passports) -> None:
    """What another node forwards (``/network/governance/parts``) is made once per researcher and key, even when
    copies arrive at once (a retry while the first is still being made); the same key is another researcher's
    own; the same key for another request is refused."""
    DatasetService(node.database).create(
        NewDataset(id="c1", title="c1", custodian="c1", access_level="controlled", duo_codes=["GRU"])
    )
    body = {"datasets": ["c1"], "purpose": {"primary": "GRU"}, "project_title": "P", "institution": "I"}
    researcher = {**bearer(passports.anonymous_researcher()), "Idempotency-Key": "retry-me"}

    def send(_: int) -> httpx.Response:
        return client.post("/network/governance/parts", json=body, headers=researcher)

    with ThreadPoolExecutor(6) as pool:
        copies = list(pool.map(send, range(6)))
    assert sorted(copy.status_code for copy in copies) == [200] * 5 + [201], [c.text for c in copies]
    [made] = {copy.json()["id"] for copy in copies}
    assert [r["id"] for r in client.get("/governance/requests", headers=researcher).json()] == [made]

    other = {
        **bearer(Passports(passports.issuer, subject="researcher-2").anonymous_researcher()),
        "Idempotency-Key": "retry-me",
    }
    theirs = client.post("/network/governance/parts", json=body, headers=other)
    assert theirs.status_code == 201 and theirs.json()["id"] != made, theirs.text

    changed = client.post("/network/governance/parts", json={**body, "institution": "J"}, headers=researcher)
    assert changed.status_code == 409 and made in changed.json()["msg"], changed.text
    unkeyed = client.post("/network/governance/parts", json=body, headers=bearer(passports.anonymous_researcher()))
    assert unkeyed.status_code == 400 and "Idempotency-Key" in unkeyed.json()["msg"], unkeyed.text
    assert [r["id"] for r in client.get("/governance/requests", headers=researcher).json()] == [made]
