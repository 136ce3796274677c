"""Matchmaker Exchange between real node processes over loopback HTTP.

Node B (``genoshare serve``) holds rare-disease patients and trusts Peer A's token. Node A's steward runs
``genoshare clinical match`` (its own process, on A's data directory): B answers with its planted match; a
peer that is down and one that never answers are reported as such, within their deadlines, beside B's
answer. B refuses a request with a token it never gave, and writes the refusal to its audit log.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from jsonschema import Draft202012Validator

from clinical.clinical_world import MARFAN, PEER_NAME, PEER_TOKEN, PEOPLE, build_world, matchmaker_settings
from genoshare.node import Node, init_node
from genoshare.settings import MatchmakerPeer, MatchmakerSettings, load_settings

from processes import Server, free_port, run_cli
from support import SPEC, pseudonyms_by_source

MEDIA = "application/vnd.ga4gh.matchmaker.v1.1+json"


@pytest.fixture(scope="module")
def node_b(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    root = tmp_path_factory.mktemp("node-b")
    world = build_world(root, load_settings(root / "node", environment="test", mme=matchmaker_settings()))
    yield world.node
    world.node.close()


@pytest.fixture(scope="module")
def b(node_b: Node) -> Iterator[Server]:
    """B served once for the module: starting a node process is most of these tests' time."""
    server = Server(node_b.settings.data_dir, {})
    yield server
    server.stop()


def test_a_match_request_crosses_to_a_peer_process_and_down_peers_are_reported(
    node_b: Node, b: Server, tmp_path: Path
) -> None:
    token_file = tmp_path / "b.token"
    token_file.write_text(PEER_TOKEN + "\n")
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        peers = [
            MatchmakerPeer(name="Node B", base_url=f"{b.url}/mme", token_file=token_file, deadline_seconds=30),
            MatchmakerPeer(
                name="Down", base_url=f"http://127.0.0.1:{free_port()}/mme", token_file=token_file, deadline_seconds=5
            ),
            MatchmakerPeer(
                name="Silent",
                base_url=f"http://127.0.0.1:{silent.getsockname()[1]}/mme",
                token_file=token_file,
                deadline_seconds=1.5,
            ),
        ]
        node_a = init_node(load_settings(tmp_path / "node-a", mme=MatchmakerSettings(peers=peers)))
        node_a.close()
        query = tmp_path / "patient.json"
        query.write_text(
            json.dumps(
                {
                    "patient": {
                        "id": "a-patient",
                        "contact": {"name": "Dr A", "href": "mailto:dr.a@example.org"},
                        "features": [{"id": term} for term in MARFAN],
                        "genomicFeatures": [{"gene": {"id": "GENE1"}}],
                    }
                }
            )
        )
        started = time.monotonic()
        done = run_cli("clinical", "match", str(query), "--json", "--data-dir", str(tmp_path / "node-a"), timeout=120)
        took = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    answers = {answer["peer"]: answer for answer in json.loads(done.stdout)}
    assert answers["Node B"]["status"] == "answered"
    schema = json.loads((SPEC / "mme" / "mme-search-1.1.schema.json").read_text())
    Draft202012Validator({**schema, "$ref": "#/$defs/response"}).validate({"results": answers["Node B"]["results"]})
    best = answers["Node B"]["results"][0]
    assert best["patient"]["contact"]["name"] == "Dr Custodian, Genetics"
    assert best["patient"]["genomicFeatures"] == [{"gene": {"id": "GENE1"}}]
    assert answers["Down"]["status"] == "unreachable" and answers["Down"]["results"] == []
    assert answers["Silent"]["status"] == "timed out"
    assert 1.5 <= answers["Silent"]["seconds"] < 5
    assert took < 60, "a silent peer must not hold the search past its deadline"
    # B wrote the answer to its audit log, under A's name as B knows it.
    shown = [e for e in node_b.audit.entries() if e.action == "mme.match" and e.actor == f"mme:{PEER_NAME}"]
    assert shown and shown[-1].details["datasets"]["rare"]["records"] >= 1


def test_a_peer_process_refuses_a_token_it_never_gave(node_b: Node, b: Server) -> None:
    body = {"patient": {"id": "x", "contact": {"name": "n", "href": "mailto:n@x"}, "features": [{"id": MARFAN[0]}]}}
    for headers in ({}, {"X-Auth-Token": "guessed-" + PEER_TOKEN}, {"X-Auth-Token": PEER_TOKEN.upper()}):
        answer = httpx.post(f"{b.url}/mme/match", json=body, headers={"Content-Type": MEDIA, **headers}, timeout=30)
        assert answer.status_code == 401, answer.text
        assert answer.json()["message"] and answer.json().get("results") is None
    trusted = httpx.post(
        f"{b.url}/mme/match", json=body, headers={"Content-Type": MEDIA, "X-Auth-Token": PEER_TOKEN}, timeout=30
    )
    assert trusted.status_code == 200
    refused = [e for e in node_b.audit.entries() if e.action == "mme.match" and e.decision != "permit"]
    assert refused, "refused match requests must be audited"


def test_a_peer_sees_no_sample_name_and_no_one_who_did_not_consent(node_b: Node, b: Server) -> None:
    """R04 refused matchmaking, R05 withdrew, N01's dataset allows no matchmaking: each has exactly the asked
    phenotype and would score best; only R01 (consenting, and carrying GENE1's rare allele) may be shown."""
    pseudonym = pseudonyms_by_source(node_b, PEOPLE)
    body = {
        "patient": {
            "id": "q",
            "contact": {"name": "Dr A", "href": "mailto:a@example.org"},
            "features": [{"id": term} for term in MARFAN],
            "genomicFeatures": [{"gene": {"id": "GENE1"}}],
        }
    }
    answer = httpx.post(
        f"{b.url}/mme/match", json=body, headers={"Content-Type": MEDIA, "X-Auth-Token": PEER_TOKEN}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    shown = [result["patient"]["id"] for result in answer.json()["results"]]
    assert f"rare/{pseudonym['R01']}" in shown, shown
    for refused in ("R04", "R05", "N01"):
        assert not any(pseudonym[refused] in patient for patient in shown), (refused, shown)
    for sample in pseudonym:
        assert sample not in answer.text, f"the sample name {sample} left the node"


def test_the_disease_root_as_disorder_shows_no_one_it_does_not_describe(node_b: Node, b: Server) -> None:
    """A peer naming MONDO's root ("disease") or "human disease" says nothing about its patient; every diagnosed
    person here has a subtype of it, so an unweighted disorder part would score them all 1 and show them.
    Asked with a gene nobody here carries (the request needs features or genes), nobody may be shown."""
    pseudonym = pseudonyms_by_source(node_b, PEOPLE)
    for root in ("MONDO:0000001", "MONDO:0700096"):
        body = {
            "patient": {
                "id": "fishing",
                "contact": {"name": "Dr A", "href": "mailto:a@example.org"},
                "disorders": [{"id": root}],
                "genomicFeatures": [{"gene": {"id": "NOT-A-GENE-HERE"}}],
            }
        }
        answer = httpx.post(
            f"{b.url}/mme/match", json=body, headers={"Content-Type": MEDIA, "X-Auth-Token": PEER_TOKEN}, timeout=30
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["results"] == [], (root, answer.json()["results"])
    # The same peer naming R06's own disease (Marfan syndrome, by its OMIM id) still finds them.
    body["patient"]["disorders"] = [{"id": "OMIM:154700"}]
    answer = httpx.post(
        f"{b.url}/mme/match", json=body, headers={"Content-Type": MEDIA, "X-Auth-Token": PEER_TOKEN}, timeout=30
    )
    assert [r["patient"]["id"] for r in answer.json()["results"]][:1] == [f"rare/{pseudonym['R06']}"]
