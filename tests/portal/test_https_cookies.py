"""Behind https the portal's cookie is ``__Host-`` and ``Secure``, and pages ask for HSTS."""

from __future__ import annotations

from fastapi.testclient import TestClient

from genoshare.api.app import create_app
from genoshare.node import Node

from portal_support import csrf_token
from support import Passports


def test_over_https_the_session_cookie_is_secure_and_host_only(node: Node, passports: Passports) -> None:
    node.settings.public_url = "https://node.example"
    with TestClient(create_app(node), base_url="https://node.example") as client:
        page = client.get("/portal/signin")
        # A visitor's page makes no session: only the visitor cookie its form token is signed over.
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-genoshare-visitor=") and "Secure" in cookie and "Domain" not in cookie
        assert page.headers["strict-transport-security"].startswith("max-age=")
        signed = client.post(
            "/portal/signin/passport",
            data={"csrf_token": csrf_token(page.text), "passport": passports.anonymous_researcher()},
            headers={"Origin": "https://node.example"},
        )
        assert signed.status_code == 200 and "You are signed in." in signed.text
        session_cookie = signed.history[0].headers["set-cookie"]
        assert session_cookie.startswith("__Host-genoshare=") and "Secure" in session_cookie
        assert "Domain" not in session_cookie
