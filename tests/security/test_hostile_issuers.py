"""Trusted issuers turned hostile (or broken), against ``genoshare serve``: what their endpoints answer.

A peer node trusted for its grants, or a passport broker, is asked for its keys and its users' visas over
HTTP when a token naming it arrives; the portal's broker for its discovery document when a sign-in
starts. Played by one loopback server, each answers JSON nested past the parser's limit, or more than any
key set holds. Anyone can send such a token or start a sign-in: the node must say the issuer could not
be read (a 502 or a 401), never fail with a 500 or read without end.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
from hostile_server import hostile

from genoshare.node import init_node
from genoshare.settings import TrustedIssuer, load_settings

__all__ = ["hostile"]


def token(issuer: str) -> str:
    """A signed-looking token naming ``issuer`` and a key id it never published."""

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    header = {"alg": "RS256", "typ": "vnd.ga4gh.passport+jwt", "kid": "unknown"}
    return f"{part(header)}.{part({'iss': issuer, 'sub': 's', 'exp': 4102444800, 'iat': 1})}.c2ln"


def test_a_hostile_issuers_keys_are_a_bad_gateway(tmp_path: Path, serve: Any, hostile: str) -> None:
    issuers = {name: f"https://{name}.issuer.example" for name in ("nested", "huge")}
    settings = load_settings(
        tmp_path / "node",
        database_url=f"sqlite:///{tmp_path / 'node.db'}",
        trusted_issuers=[
            TrustedIssuer(issuer=url, jwks_url=f"{hostile}/{name}/jwks.json") for name, url in issuers.items()
        ],
        portal={"oidc_issuer": f"{hostile}/nested", "oidc_client_id": "genoshare"},
    )
    init_node(settings).close()
    server = serve(settings.data_dir, {"GENOSHARE_DATABASE_URL": settings.database_url})
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for name, issuer in issuers.items():
            answer = http.get("/api/individuals", headers={"Authorization": f"Bearer {token(issuer)}"})
            assert answer.status_code in (401, 502), (name, answer.status_code, answer.text[:300])
        # The portal's broker, asked for its discovery document when anyone starts to sign in.
        page = http.get("/portal/signin/oidc")
        assert page.status_code == 502 and "passport broker" in page.text, (page.status_code, page.text[:300])
    assert "Traceback" not in server.stop()
