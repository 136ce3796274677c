"""An access request sent to a node that makes it but whose answer comes late, or never: the researcher is
told it may have been made (never "timeout" or "failed"), and sending it again under the same
Idempotency-Key makes it once.

Real processes on loopback: ``hub`` and ``delta`` (``genoshare serve``). delta is the hub's peer twice,
behind two proxies (``stand_ins.py``) that pass every request on at once: ``slow`` holds delta's first answer
to each Idempotency-Key back past the hub's write deadline, ``lossy`` drops it and closes the connection.
"""

from __future__ import annotations

import json
import shlex
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from network_nodes import StandIn, build_node

from genoshare.access.issuer import VisaIssuer

from processes import Server, run_cli
from support import TEST_ISSUER, Passports

pytestmark = pytest.mark.slow

#: The hub's Beacon deadline, and the shorter write deadline these tests give it (its default is longer).
DEADLINE, WRITE_DEADLINE = 2.0, 1.0
#: Slack for a loaded 2-CPU machine: the answer must come this soon after the write deadline at the latest.
SLACK = 1.5
CHAIR = f"chair@{TEST_ISSUER}"
BODY = {"purpose": {"primary": "GRU"}, "project_title": "Late answers", "institution": "Example University"}


class Nodes:
    def __init__(self, root: Path) -> None:
        self.issuer = VisaIssuer.load_or_create(TEST_ISSUER, root / "issuer.jwk.json")
        hub = build_node(root / "hub", "hub", access="public", samples=3, carriers=1, committee=CHAIR)
        delta = build_node(root / "delta", "delta", access="public", samples=3, carriers=1, committee=CHAIR)
        self.delta = Server(delta, {})
        self.slow = StandIn("proxy", self.delta.url, "--first-answer", "hold", "--hold", str(WRITE_DEADLINE + 5))
        self.lossy = StandIn("proxy", self.delta.url, "--first-answer", "drop")
        peers = [
            {"url": self.slow.url, "name": "slow", "trusts": [TEST_ISSUER]},
            {"url": self.lossy.url, "name": "lossy", "trusts": [TEST_ISSUER]},
        ]
        network = {"peers": peers, "deadline_seconds": DEADLINE, "write_deadline_seconds": WRITE_DEADLINE}
        self.hub = Server(hub, {"GENOSHARE_NETWORK": json.dumps(network)})

    def researcher(self, subject: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {Passports(self.issuer, subject=subject).anonymous_researcher()}"}

    def submit(self, headers: dict[str, str], body: dict[str, Any], key: str | None) -> tuple[httpx.Response, float]:
        """``body`` sent to the hub's ``/network/governance/requests`` (under ``key``), and how long it took."""
        started = time.monotonic()
        keyed = {**headers, "Idempotency-Key": key} if key else headers
        response = httpx.post(f"{self.hub.url}/network/governance/requests", json=body, headers=keyed, timeout=30)
        return response, time.monotonic() - started

    def made_at_delta(self, headers: dict[str, str]) -> list[dict[str, Any]]:
        """The researcher's requests as delta itself lists them (asked directly, not through a proxy)."""
        response = httpx.get(f"{self.delta.url}/governance/requests", headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        requests: list[dict[str, Any]] = response.json()
        return requests

    def stop(self) -> None:
        for process in (self.slow, self.lossy, self.hub, self.delta):
            process.stop()


@pytest.fixture(scope="module")
def nodes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nodes]:
    built = Nodes(tmp_path_factory.mktemp("submissions"))
    try:
        yield built
    finally:
        built.stop()


def answered_by_delta(proxy: StandIn, key: str) -> None:
    """Wait (bounded) until delta has answered the request under ``key``: the proxy says so as it holds or drops it."""
    deadline = time.monotonic() + 30
    while f"the answer to {key}" not in proxy.log:
        assert time.monotonic() < deadline, f"delta never answered the request under {key}: {proxy.log}"
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("peer", "what"),
    [("slow", f"sent, no answer within {WRITE_DEADLINE:g} s"), ("lossy", "sent, then no answer (")],
)
def test_an_unanswered_request_may_have_been_made_and_a_retry_makes_it_once(nodes: Nodes, peer: str, what: str) -> None:
    proxy = getattr(nodes, peer)
    headers = nodes.researcher(f"unanswered-{peer}")
    body = {**BODY, "datasets": [f"{proxy.url}/datasets/delta-controlled"]}
    key = str(uuid.uuid4())

    first, elapsed = nodes.submit(headers, body, key)
    assert first.status_code == 200, first.text  # not every part is known to be submitted
    assert elapsed < WRITE_DEADLINE + SLACK, f"the answer took {elapsed:.2f} s with a {WRITE_DEADLINE:g} s deadline"
    answer = first.json()
    [part] = answer["requests"]
    assert part["node"] == peer and part["status"] == "unknown", part
    assert part["reason"].startswith(what), part["reason"]
    assert "may have been made" in part["reason"] and "same Idempotency-Key is safe" in part["reason"]
    assert answer["complete"] is False and answer["idempotencyKey"] == key
    retry = answer["retry"]
    assert (retry["method"], retry["url"], retry["headers"]) == (
        "POST",
        f"{nodes.hub.url}/network/governance/requests",
        {"Idempotency-Key": key},
    )

    # It was made: the "unknown" was right not to be a no.
    answered_by_delta(proxy, key)
    [made] = nodes.made_at_delta(headers)
    assert (made["datasets"], made["status"]) == (["delta-controlled"], "pending")

    # The retry the answer offers: the same request, the same key; delta answers with the request it made.
    again, _ = nodes.submit(headers, body, retry["headers"]["Idempotency-Key"])
    assert again.status_code == 201, again.text
    [part] = again.json()["requests"]
    assert part["status"] == "submitted" and part["request"]["id"] == made["id"], part
    assert "retry" not in again.json()
    assert [r["id"] for r in nodes.made_at_delta(headers)] == [made["id"]]


def test_the_same_key_for_another_request_is_refused(nodes: Nodes) -> None:
    headers = nodes.researcher("reused-key")
    body = {**BODY, "datasets": [f"{nodes.slow.url}/datasets/delta-controlled"]}
    key = str(uuid.uuid4())
    nodes.submit(headers, body, key)
    answered_by_delta(nodes.slow, key)
    [made] = nodes.made_at_delta(headers)

    other = {**body, "project_title": "Another project"}
    refused, _ = nodes.submit(headers, other, key)
    assert refused.status_code == 200, refused.text
    [part] = refused.json()["requests"]
    assert part["status"] == "error" and part["reason"].startswith("HTTP 409"), part
    assert made["id"] in part["reason"] and "new key" in part["reason"]

    # Asked directly, delta says the same in its own error body.
    direct = httpx.post(
        f"{nodes.delta.url}/network/governance/parts",
        json={**other, "datasets": ["delta-controlled"]},
        headers={**headers, "Idempotency-Key": key},
        timeout=30,
    )
    assert direct.status_code == 409
    assert direct.json()["status_code"] == 409 and "another request of yours" in direct.json()["msg"]
    # And with the first request, delta answers 200 with the one it made (no new one: not 201).
    same = httpx.post(
        f"{nodes.delta.url}/network/governance/parts",
        json={**body, "datasets": ["delta-controlled"]},
        headers={**headers, "Idempotency-Key": key},
        timeout=30,
    )
    assert same.status_code == 200 and same.json()["id"] == made["id"], same.text
    assert [r["id"] for r in nodes.made_at_delta(headers)] == [made["id"]]


def test_a_request_sent_without_a_key_is_given_one_to_send_it_again_with(nodes: Nodes) -> None:
    """The hub names the request when the researcher did not; sent again under that name, nothing new is made."""
    headers = nodes.researcher("no-key")
    body = {**BODY, "datasets": ["hub-controlled"]}
    first, _ = nodes.submit(headers, body, None)
    assert first.status_code == 201, first.text
    key = first.json()["idempotencyKey"]
    [part] = first.json()["requests"]
    again, _ = nodes.submit(headers, body, key)
    assert again.status_code == 201, again.text
    assert [p["request"]["id"] for p in again.json()["requests"]] == [part["request"]["id"]]
    listed = httpx.get(f"{nodes.hub.url}/governance/requests", headers=headers, timeout=30).json()
    assert [r["id"] for r in listed] == [part["request"]["id"]]
    # A key no header could carry is refused before anything is sent.
    bad, _ = nodes.submit(headers, body, "two words")
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["msg"], bad.text


def test_the_command_line_prints_the_retry_and_the_retry_makes_it_once(nodes: Nodes, tmp_path: Path) -> None:
    """``genoshare network request`` exits 3 when a node may have made the request without saying, and prints
    the command that sends it again under the same key; that command makes nothing twice."""
    subject = "command-line"
    passport = tmp_path / "passport.jwt"
    passport.write_text(Passports(nodes.issuer, subject=subject).anonymous_researcher())
    purpose = tmp_path / "purpose.json"
    purpose.write_text(json.dumps(BODY["purpose"]))
    arguments = ["--passport-file", str(passport), "--purpose-file", str(purpose), "--project", "From the shell"]
    arguments += ["--institution", "Example University", "--dataset", f"{nodes.slow.url}/datasets/delta-controlled"]

    first = run_cli("network", "request", nodes.hub.url, *arguments, timeout=60)
    assert first.returncode == 3, (first.stdout, first.stderr)
    assert "unknown" in first.stdout and "may have been made" in first.stderr, first.stderr
    retry = shlex.split(first.stderr.rsplit("Sending it again is safe", 1)[1].split("\n", 1)[1].strip())
    assert retry[:3] == ["genoshare", "network", "request"] and "--idempotency-key" in retry, retry
    key = retry[retry.index("--idempotency-key") + 1]
    answered_by_delta(nodes.slow, key)

    again = run_cli(*retry[1:], "--json", timeout=60)
    assert again.returncode == 0, (again.stdout, again.stderr)
    [part] = json.loads(again.stdout)["requests"]
    made = nodes.made_at_delta(nodes.researcher(subject))
    assert part["status"] == "submitted" and [r["id"] for r in made] == [part["request"]["id"]], (part, made)
