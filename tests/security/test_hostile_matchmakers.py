"""Matchmaker Exchange peers turned hostile, and match requests nested too deep, against ``genoshare serve``.

The node's steward sends a patient to its peers (``POST /mme/peers/match``); the peers, all played by one
loopback server, answer with JSON nested past the parser's limit, with a 40 MiB answer, with a redirect
to another host, or a byte at a time. Each must be reported as the failure it is, the token never
following the redirect, the dripping peer hung up on at its deadline; a request nested too deep, from
the steward or from a trusted peer (``POST /mme/match``), is bad input.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import httpx
from hostile_server import NESTED, Hostile, hostile

from genoshare.access.issuer import VisaIssuer
from genoshare.node import init_node
from genoshare.settings import (
    Account,
    MatchmakerPeer,
    MatchmakerSettings,
    RoleSettings,
    TrustedIssuer,
    load_settings,
)

from support import TEST_ISSUER, Passports, bearer

__all__ = ["hostile"]

DEADLINE = 3.0
MEDIA = "application/vnd.ga4gh.matchmaker.v1.1+json"
PEER_TOKEN = "a-peer-token-" + "1" * 30
OUR_TOKEN = "the-token-the-hostile-peers-gave-us"
PATIENT = {
    "patient": {
        "id": "p1",
        "contact": {"name": "Dr A", "href": "mailto:a@example.org"},
        "features": [{"id": "HP:0001166"}],
    }
}


def test_hostile_matchmakers_are_reported_and_deep_requests_refused(tmp_path: Path, serve: Any, hostile: str) -> None:
    issuer = VisaIssuer.load_or_create(TEST_ISSUER, tmp_path / "issuer.jwk.json")
    issuer.write_jwks(tmp_path / "jwks.json")
    token_file = tmp_path / "peer.token"
    token_file.write_text(OUR_TOKEN + "\n")
    names = ("nested", "nested-error", "huge", "redirect", "drip")
    peers = [
        MatchmakerPeer(name=name, base_url=f"{hostile}/{name}", token_file=token_file, deadline_seconds=DEADLINE)
        for name in names
    ]
    trusted = MatchmakerPeer(name="trusted", token_sha256=hashlib.sha256(PEER_TOKEN.encode()).hexdigest())
    settings = load_settings(
        tmp_path / "node",
        database_url=f"sqlite:///{tmp_path / 'node.db'}",
        trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=tmp_path / "jwks.json")],
        roles=RoleSettings(stewards=[Account(subject="steward-1", issuer=TEST_ISSUER)]),
        mme=MatchmakerSettings(peers=[trusted, *peers], contact_href="mailto:mme@example.org"),
    )
    init_node(settings).close()
    server = serve(settings.data_dir, {"GENOSHARE_DATABASE_URL": settings.database_url})
    steward = bearer(Passports(issuer, subject="steward-1").anonymous_researcher())
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.post("/mme/peers/match", json=PATIENT, headers=steward)
        assert answer.status_code == 200, answer.text[:2000]
        reported = {peer["peer"]: peer for peer in answer.json()["peers"]}
        for name in names:
            assert reported[name]["status"] != "answered" and reported[name]["message"], reported[name]
        assert "larger than" in reported["huge"]["message"], reported["huge"]
        assert reported["drip"]["status"] == "timed out"
        # The peer that drips its answer is hung up on at its deadline, not read from for as long as it sends.
        waited = time.monotonic()
        while not Hostile.hung_up and time.monotonic() - waited < DEADLINE + 5:
            time.sleep(0.1)
        assert Hostile.hung_up and Hostile.hung_up[0][1] < DEADLINE + 3, Hostile.hung_up
        deep = b'{"patient": ' + NESTED + b"}"
        for path, headers in (
            ("/mme/peers/match", {**steward, "Content-Type": "application/json"}),
            ("/mme/match", {"X-Auth-Token": PEER_TOKEN, "Content-Type": MEDIA}),
        ):
            refused = http.post(path, content=deep, headers=headers)
            assert refused.status_code == 400, (path, refused.status_code, refused.text[:300])
            assert refused.json()["message"], path
    assert not [path for path, _ in Hostile.seen if path.startswith("/steal")], "a peer's redirect was followed"
    assert {path.split("/")[1] for path, token in Hostile.seen if token == OUR_TOKEN} == set(names)
    assert "Traceback" not in server.stop()
