"""A peer node's keys are trusted for grants to the peer's own datasets and nothing else.

The same through served nodes: ``tests/network/test_network_nodes.py``
(``test_one_request_on_three_nodes_and_passports_across_nodes``).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import (
    CONTROLLED_ACCESS_GRANTS,
    RESEARCHER_STATUS,
    PassportVerifier,
    TrustedKeys,
    peer_node_issuers,
)
from genoshare.settings import BONA_FIDE_RESEARCHER, PassportSettings, Peer, TrustedIssuer

NODE = "https://node.example.org"
PEER = "https://peer.example.org"


def test_a_peer_node_grants_its_own_datasets_only(tmp_path: Path, issuer: VisaIssuer) -> None:
    peer = VisaIssuer.load_or_create(PEER, tmp_path / "peer.jwk")
    peer.write_jwks(tmp_path / "peer-jwks.json")
    issuer.write_jwks(tmp_path / "idp-jwks.json")
    trusted = [
        TrustedIssuer(issuer=PEER, jwks_file=tmp_path / "peer-jwks.json"),
        TrustedIssuer(issuer=issuer.issuer, jwks_file=tmp_path / "idp-jwks.json"),
    ]
    with httpx.Client() as http:
        check = PassportVerifier(
            TrustedKeys(trusted, http), PassportSettings(), node_issuer=NODE, audiences=[NODE], peer_nodes=[PEER]
        )
        visas = [
            peer.visa("alice", CONTROLLED_ACCESS_GRANTS, f"{PEER}/datasets/own"),
            peer.visa("alice", CONTROLLED_ACCESS_GRANTS, f"{NODE}/datasets/mine"),  # not the peer's to give
            peer.visa("alice", CONTROLLED_ACCESS_GRANTS, f"{PEER}.evil.org/datasets/x"),  # a look-alike URL
            peer.visa("alice", RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by="so"),  # not the peer's to assert
            issuer.visa("alice", RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by="so"),  # carried on as signed
        ]
        identity = check.verify(peer.passport("alice", visas))
    assert [(v.issuer, v.type, v.value) for v in identity.visas] == [
        (PEER, CONTROLLED_ACCESS_GRANTS, f"{PEER}/datasets/own"),
        (issuer.issuer, RESEARCHER_STATUS, BONA_FIDE_RESEARCHER),
    ]
    assert len(identity.rejected_visas) == 3
    assert all("trusted only for grants to its own datasets" in reason for reason in identity.rejected_visas)


def test_only_peers_marked_for_grants_have_their_keys_trusted() -> None:
    peers = [Peer(url=PEER, trust_grants=True), Peer(url="https://other.example.org")]
    assert [(t.issuer, t.jwks_url) for t in peer_node_issuers(peers)] == [(PEER, f"{PEER}/.well-known/jwks.json")]
