"""A Beacon network of real nodes on loopback, each with its own synthetic cohort (``genoshare serve``):

- ``hub`` asks the network on ``/network/api``; its peers are ``alpha`` (healthy, trusts the researcher's
  passport issuer), ``beta`` (behind a proxy that delays it past the deadline), ``gamma`` (healthy, trusts no
  issuer; killed half way), a Beacon answering with the spec's own example responses, and one answering
  garbage. Proxies in front of alpha, beta and gamma keep their access logs (request lines and headers).

The network answer must come within the deadline with the healthy nodes' results and every failure named;
the researcher's passport must reach alpha and no one else.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml
from beacon_schemas import BY_GRANULARITY, assert_valid, framework
from network_nodes import SHARED, StandIn, build_node
from stand_ins import ABOUT, EXAMPLES
from typer.testing import CliRunner

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS
from genoshare.cli.main import app
from genoshare.network.peers import PeerDirectory, PeerNode
from genoshare.settings import BONA_FIDE_RESEARCHER, NetworkSettings, ServiceRegistry

from processes import Server, free_port
from support import SPEC, TEST_ISSUER, Passports

pytestmark = pytest.mark.slow

#: The hub's Beacon deadline. Access requests forwarded to a peer wait the hub's default write deadline
#: (``write_deadline_seconds``) instead: a loaded alpha making and approving one is waited for.
DEADLINE = 2.0
CHAIR = f"chair@{TEST_ISSUER}"
PURPOSE = {"primary": "GRU"}
#: Slack for a loaded 2-CPU machine: the answer must come this soon after the deadline at the latest.
SLACK = 1.5


class Network:
    def __init__(self, root: Path) -> None:
        self.issuer = VisaIssuer.load_or_create(TEST_ISSUER, root / "issuer.jwk.json")
        cohorts = {
            "hub": {"access": "public", "samples": 6, "carriers": 2, "committee": CHAIR},
            "alpha": {"access": "registered", "samples": 5, "carriers": 3, "committee": CHAIR, "auto_approve": True},
            "beta": {"access": "public", "samples": 4, "carriers": 1},
            "gamma": {"access": "public", "samples": 7, "carriers": 4},
        }
        self.data = {name: build_node(root / name, name, **cohort) for name, cohort in cohorts.items()}  # type: ignore[arg-type]
        # One at a time: a server given 30 s to start must not share the CPUs with the others starting.
        started = {name: Server(self.data[name], {}) for name in ("alpha", "beta", "gamma")}
        self.servers: dict[str, Any] = started
        self.proxies = {
            "alpha": StandIn("proxy", started["alpha"].url),
            "beta": StandIn("proxy", started["beta"].url, "--delay", str(DEADLINE + 6)),
            "gamma": StandIn("proxy", started["gamma"].url),
        }
        self.examples = StandIn("examples")
        peers = [
            {
                "url": started["alpha"].url,
                "name": "alpha",
                "beacon_url": f"{self.proxies['alpha'].url}/api",
                "trusts": [TEST_ISSUER],
                "trust_grants": True,
            },
            {"url": started["beta"].url, "name": "beta", "beacon_url": f"{self.proxies['beta'].url}/api"},
            {"url": started["gamma"].url, "name": "gamma", "beacon_url": f"{self.proxies['gamma'].url}/api"},
            {"url": self.examples.url, "name": "spec-examples"},
            {"url": f"{self.examples.url}/garbage", "name": "garbage"},
        ]
        network = json.dumps({"peers": peers, "deadline_seconds": DEADLINE})
        self.servers["hub"] = Server(self.data["hub"], {"GENOSHARE_NETWORK": network})
        self.hub = self.servers["hub"].url

    def stop(self) -> None:
        for stand_in in [*self.proxies.values(), self.examples]:
            stand_in.stop()
        for server in self.servers.values():
            server.stop()


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    built = Network(tmp_path_factory.mktemp("network"))
    try:
        yield built
    finally:
        built.stop()


def ask(network: Network, headers: dict[str, str] | None = None, **params: str) -> tuple[dict[str, Any], float]:
    started = time.monotonic()
    response = httpx.get(
        f"{network.hub}/network/api/g_variants",
        params={**SHARED, "requestedGranularity": "record", **params},
        headers=headers or {},
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    document = response.json()
    assert_valid(document, framework(BY_GRANULARITY[document["meta"]["returnedGranularity"]]))
    return document, elapsed


def nodes(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {node["name"]: node for node in document["info"]["network"]["nodes"]}


def result_sets(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {rs["id"]: rs for rs in document.get("response", {}).get("resultSets", [])}


def test_passport_goes_to_the_trusting_peer_only(network: Network) -> None:
    passport = Passports(network.issuer, subject="net-researcher").anonymous_researcher()
    document, elapsed = ask(network, {"Authorization": f"Bearer {passport}"})
    assert elapsed < DEADLINE + SLACK, f"the answer took {elapsed:.2f} s with a {DEADLINE} s deadline"
    answered = nodes(document)
    assert answered["hub"]["passport"] == "verified"
    assert answered["alpha"]["status"] == "answered" and answered["alpha"]["passport"] == "sent", (answered, elapsed)
    assert answered["gamma"]["status"] == "answered" and answered["gamma"]["passport"].startswith("not sent")
    # alpha's registered dataset answers an allele query only to a researcher: it saw the passport.
    alpha_dataset = next(d for d in answered["alpha"]["datasets"] if d["id"] == "alpha")
    assert alpha_dataset["consulted"] is True
    assert result_sets(document)["alpha"]["info"]["node"]["name"] == "alpha"

    assert passport in network.proxies["alpha"].log
    for untrusting in ("gamma", "beta"):
        log = network.proxies[untrusting].log
        assert "GET /api/g_variants" in log, f"{untrusting} was asked"
        assert passport not in log and "authorization" not in log.lower(), f"{untrusting} was sent the passport"

    # Nothing is kept for the next caller: an anonymous one is not answered from alpha's dataset.
    anonymous, _ = ask(network)
    assert next(d for d in nodes(anonymous)["alpha"]["datasets"] if d["id"] == "alpha")["consulted"] is False
    assert "alpha" not in result_sets(anonymous)


def test_one_request_on_three_nodes_and_passports_across_nodes(network: Network) -> None:
    """Each node's committee decides its own datasets, the researcher sees every decision at the hub, and the
    passport alpha signs (keeping the researcher's ResearcherStatus) is accepted for requests at the hub.

    The hub trusts alpha's keys for alpha's own datasets only: a grant alpha signs for a hub dataset, or a
    ResearcherStatus alpha asserts itself, counts for nothing there.
    """
    researcher = Passports(network.issuer, subject="net-requester")
    headers = {"Authorization": f"Bearer {researcher.anonymous_researcher()}"}
    hub, alpha, beta = network.hub, network.servers["alpha"].url, network.servers["beta"].url
    body = {"purpose": PURPOSE, "project_title": "Rare disease cohort", "institution": "Example University"}
    datasets = ["hub-controlled", f"{alpha}/datasets/alpha-controlled", f"{beta}/datasets/beta"]
    with httpx.Client(timeout=30) as http:
        submitted = http.post(
            f"{hub}/network/governance/requests", json={**body, "datasets": datasets}, headers=headers
        )
        assert submitted.status_code == 200, submitted.text  # not every part could be submitted: beta's
        parts = {part["node"]: part for part in submitted.json()["requests"]}
        assert parts["hub"]["status"] == "submitted" and parts["hub"]["request"]["status"] == "pending"
        assert parts["alpha"]["status"] == "submitted" and parts["alpha"]["request"]["status"] == "approved"
        assert parts["beta"]["status"] == "not sent" and TEST_ISSUER in parts["beta"]["reason"]

        listed = http.get(f"{hub}/network/governance/requests", headers=headers).json()
        decisions = {
            node["node"]: [(r["datasets"], r["status"]) for r in node.get("requests", [])] for node in listed["nodes"]
        }
        assert decisions["hub"] == [(["hub-controlled"], "pending")]
        assert decisions["alpha"] == [(["alpha-controlled"], "approved")]
        assert {node["node"]: node["status"] for node in listed["nodes"]}["beta"] == "not asked"

        # alpha's passport carries the researcher's own ResearcherStatus: the hub accepts it for a request.
        signed = http.get(f"{alpha}/governance/passport", headers=headers).json()
        assert [grant["dataset"] for grant in signed["grants"]] == ["alpha-controlled"]
        by_alpha = {"Authorization": f"Bearer {signed['passport']}"}
        again = http.post(f"{hub}/governance/requests", json={**body, "datasets": ["hub-controlled"]}, headers=by_alpha)
        assert again.status_code == 201, again.text

        # The hub's committee approves its own part: the hub's grant opens the hub's file (the control case).
        chair = {"Authorization": f"Bearer {Passports(network.issuer, subject='chair').anonymous_researcher()}"}
        request_id = parts["hub"]["request"]["id"]
        assert http.post(f"{hub}/governance/requests/{request_id}/approve", json={}, headers=chair).status_code == 200
        own_grant = http.get(f"{hub}/governance/passport", headers=headers).json()["passport"]
        drs = f"{hub}/ga4gh/drs/v1/objects/hub-controlled.hub-controlled.vcf.gz/access/https"
        assert http.get(drs, headers={"Authorization": f"Bearer {own_grant}"}).status_code == 200

        # alpha's key, used for what alpha does not own: a grant to the hub's dataset, its own ResearcherStatus.
        alpha_key = VisaIssuer.load_or_create(alpha, network.data["alpha"] / "keys" / "issuer.jwk.json")
        forged_grant = alpha_key.visa("forger", CONTROLLED_ACCESS_GRANTS, f"{hub}/datasets/hub-controlled")
        forged_status = alpha_key.visa("forger", RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by="so")
        forged = {"Authorization": f"Bearer {alpha_key.passport('forger', [forged_grant, forged_status])}"}
        assert http.get(drs, headers=forged).status_code == 403
        refused = http.post(f"{hub}/governance/requests", json={**body, "datasets": ["hub-controlled"]}, headers=forged)
        assert refused.status_code == 403, refused.text


def test_registry_and_network_commands(network: Network, tmp_path: Path) -> None:
    """Every node lists its own services as a GA4GH Service Registry; a node reading it finds the Beacon, and
    ``genoshare network add|list|check`` show it healthy with its service-info, map and entry types."""
    alpha = network.servers["alpha"].url
    schemas = yaml.safe_load((SPEC / "service-registry" / "service-registry.yaml").read_text())["components"]["schemas"]
    with_url = schemas["ExternalService"]["allOf"][1]  # the first part is the service-info, validated below
    services = httpx.get(f"{alpha}/services", timeout=30).json()
    for service in services:
        assert_valid(service, framework("ga4gh-service-info-1-0-0-schema"))
        jsonschema.validate(service, with_url)
        assert service["url"].startswith(alpha)
    [beacon] = [s for s in services if s["type"]["artifact"] == "beacon"]
    assert httpx.get(f"{alpha}/services/{beacon['id']}", timeout=30).json() == beacon
    missing = httpx.get(f"{alpha}/services/nosuch", timeout=30)
    assert missing.status_code == 404
    jsonschema.validate(missing.json(), schemas["Error"])

    async def read_registry(private_networks: bool) -> tuple[list[PeerNode], list[str]]:
        registry = ServiceRegistry(url=alpha, trusts=[TEST_ISSUER], private_networks=private_networks)
        async with httpx.AsyncClient() as http:
            return await PeerDirectory(NetworkSettings(registries=[registry]), network.hub).peers(http)

    # alpha is on loopback: its registry's Beacons are asked only when the operator says they may be there.
    peers, problems = asyncio.run(read_registry(private_networks=True))
    assert problems == []
    assert [(p.name, p.beacon_url, p.trusts) for p in peers] == [("alpha", f"{alpha}/api", frozenset([TEST_ISSUER]))]
    peers, problems = asyncio.run(read_registry(private_networks=False))
    assert peers == [] and "alpha (a loopback or private address" in problems[0], problems

    node = tmp_path / "operator"
    runner = CliRunner()
    assert runner.invoke(app, ["init", "--data-dir", str(node)]).exit_code == 0
    added = runner.invoke(app, ["network", "add", alpha, "--name", "alpha", "--trusts", TEST_ISSUER, "-d", str(node)])
    assert added.exit_code == 0, added.output
    listed = json.loads(runner.invoke(app, ["network", "list", "--json", "-d", str(node)]).output)
    assert [(p["name"], p["url"], p["trusts"]) for p in listed] == [("alpha", alpha, [TEST_ISSUER])]
    checked = runner.invoke(app, ["network", "check", "--json", "-d", str(node)])
    assert checked.exit_code == 0, checked.output
    [health] = json.loads(checked.output)
    assert health["healthy"] is True and health["latencyMs"] > 0
    assert health["serviceInfo"]["type"] == "org.ga4gh:beacon:v2.0.0"
    assert "genomicVariation" in health["entryTypes"] and "individual" in health["endpoints"]
    # A peer that does not answer makes the check fail, saying why.
    dead = f"http://127.0.0.1:{free_port()}"
    assert runner.invoke(app, ["network", "add", dead, "--name", "dead", "-d", str(node)]).exit_code == 0
    failed = runner.invoke(app, ["network", "check", "--json", "-d", str(node)])
    assert failed.exit_code == 1
    assert {p["name"]: p["healthy"] for p in json.loads(failed.output)} == {"alpha": True, "dead": False}


def test_what_the_network_says_about_itself(network: Network) -> None:
    """info, map, entry types, configuration and filtering terms as an aggregator reads them: this node's, each
    peer named with what it said or why not, within the deadline; filtering terms the union of every node's."""
    examples = json.loads((EXAMPLES / ABOUT["/api/filtering_terms"]).read_text())["response"]["filteringTerms"]
    schemas = {
        "": "beaconInfoResponse",
        "info": "beaconInfoResponse",
        "map": "beaconMapResponse",
        "entry_types": "beaconEntryTypesResponse",
        "configuration": "beaconConfigurationResponse",
        "filtering_terms": "beaconFilteringTermsResponse",
    }
    answers = {}
    with httpx.Client(timeout=30) as http:
        for path, schema in schemas.items():
            started = time.monotonic()
            response = http.get(f"{network.hub}/network/api/{path}".rstrip("/"))
            elapsed = time.monotonic() - started
            assert response.status_code == 200, (path, response.text[:2000])
            assert elapsed < DEADLINE + SLACK, f"/{path} took {elapsed:.2f} s with a {DEADLINE} s deadline"
            document = response.json()
            assert_valid(document, framework(schema))
            statuses = {node["name"]: node["status"] for node in document["info"]["network"]["nodes"]}
            assert statuses == {
                "hub": "answered",
                "alpha": "answered",
                "beta": "timeout",
                "gamma": "answered",
                "spec-examples": "answered",
                "garbage": "invalid",
            }, (path, statuses)
            assert set(document["info"]["network"]["notAnswered"]["nodes"]) == {"beta", "garbage"}
            answers[path] = document
        paged = http.get(f"{network.hub}/network/api/filtering_terms", params={"limit": 1}).json()

    info = answers["info"]
    assert info["response"]["id"] == "org.test.hub" and answers[""]["response"] == info["response"]
    peers = nodes(info)
    assert peers["alpha"]["beaconId"] == "org.test.alpha" and peers["spec-examples"]["beaconId"] == "org.ga4gh.beacon"
    # The map is the network's: its entry paths are /network/api's; each entry type names the nodes offering it.
    endpoint_sets = answers["map"]["response"]["endpointSets"]
    assert endpoint_sets["genomicVariation"]["rootUrl"] == f"{network.hub}/network/api/g_variants"
    for entry in endpoint_sets.values():
        assert all(e["url"].startswith(f"{network.hub}/network/api/") for e in entry["endpoints"].values())
    for path in ("map", "entry_types", "configuration"):
        offered = answers[path]["info"]["network"]["entryTypes"]
        assert set(offered["genomicVariation"]) == {"hub", "alpha", "gamma"}, (path, offered)
        assert offered["exampleEntry"] == ["spec-examples"], (path, offered)
    assert nodes(answers["configuration"])["spec-examples"]["productionStatus"] == "DEV"
    # Filtering terms: every node's, once each, with the nodes offering it.
    terms = {term["id"]: term for term in answers["filtering_terms"]["response"]["filteringTerms"]}
    assert set(terms["sex"]["nodes"]) == {"hub", "alpha", "gamma"}
    for example in examples:
        assert terms[example["id"]]["nodes"] == ["spec-examples"], terms[example["id"]]
        assert terms[example["id"]]["type"] == example["type"]
    assert len(paged["response"]["filteringTerms"]) == 1


def test_slow_dead_and_garbage_peers_are_named_within_the_deadline(network: Network) -> None:
    network.proxies["gamma"].stop()
    network.servers["gamma"].stop()
    document, elapsed = ask(network)
    assert elapsed < DEADLINE + SLACK, f"the answer took {elapsed:.2f} s with a {DEADLINE} s deadline"
    answered = nodes(document)
    assert {name: node["status"] for name, node in answered.items()} == {
        "hub": "answered",
        "alpha": "answered",
        "beta": "timeout",
        "gamma": "unreachable",
        "spec-examples": "answered",
        "garbage": "invalid",
    }
    assert f"{DEADLINE:g} s" in answered["beta"]["reason"]
    assert "not JSON" in answered["garbage"]["reason"]
    assert set(document["info"]["network"]["notAnswered"]["nodes"]) == {"beta", "gamma", "garbage"}
    assert {h["url"].split("?")[0] for h in document["beaconHandovers"]} == {
        f"{network.proxies['beta'].url}/api/g_variants",
        f"{network.proxies['gamma'].url}/api/g_variants",
        f"{network.examples.url}/garbage/api/g_variants",
    }
    # The healthy nodes' results: the hub's public cohort has the allele (2 carriers of 6).
    hub = result_sets(document)["hub"]
    assert hub["exists"] is True and hub["resultsCount"] == 1
    assert hub["results"][0]["variantInternalId"].startswith("20:100000:A:G") or hub["results"]
    # The spec-example Beacon answered yes/no only: the whole answer is no finer than that.
    assert document["meta"]["returnedGranularity"] == "record"
    assert "numTotalResults" not in document["responseSummary"]
    assert document["responseSummary"]["exists"] is True


def test_decisions_stay_in_one_place_while_a_node_is_down(network: Network) -> None:
    """The hub keeps which requests a researcher has on which node, as each node last told it: with alpha
    down, alpha's decision is still shown, as what alpha last said and when, beside why alpha was not asked;
    to the researcher who made the request only."""
    researcher = Passports(network.issuer, subject="net-remembered")
    headers = {"Authorization": f"Bearer {researcher.anonymous_researcher()}"}
    alpha = network.servers["alpha"].url
    body = {"purpose": PURPOSE, "project_title": "Remembered", "institution": "Example University"}
    url = f"{network.hub}/network/governance/requests"
    with httpx.Client(timeout=30) as http:
        submitted = http.post(url, json={**body, "datasets": [f"{alpha}/datasets/alpha-controlled"]}, headers=headers)
        assert submitted.status_code == 201, submitted.text
        [part] = submitted.json()["requests"]
        request_id = part["request"]["id"]
        assert part["request"]["status"] == "approved"  # alpha's committee approves GRU purposes at once

        network.servers["alpha"].stop()
        listed = {node["node"]: node for node in http.get(url, headers=headers).json()["nodes"]}
        down = listed["alpha"]
        assert down["status"] == "unreachable" and down["reason"], down
        assert "requests" not in down, "a node that did not answer is not shown as answering"
        [known] = down["lastKnown"]["requests"]
        assert known["request"]["id"] == request_id and known["request"]["status"] == "approved", known
        assert known["request"]["datasets"] == ["alpha-controlled"] and known["seenAt"].endswith("Z")
        assert "last told" in down["lastKnown"]["notice"]

        other = {"Authorization": f"Bearer {Passports(network.issuer, subject='net-other').anonymous_researcher()}"}
        theirs = {node["node"]: node for node in http.get(url, headers=other).json()["nodes"]}
        assert theirs["alpha"]["status"] == "unreachable" and "lastKnown" not in theirs["alpha"], theirs["alpha"]
