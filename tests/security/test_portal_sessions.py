"""Attacks on the web portal's sessions and sign-in, through ``genoshare serve`` and the demo broker.

Forged forms (no token, another session's token, another site's origin), a cookie replayed after sign-out,
a stolen session row, an authorization code replayed or injected into someone else's browser, and a token
looked for in every address and log line: each must fail against the real server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from genoshare.store.models import AccessRequest, PortalSession

from portal_support import PortalNode, csrf_token, portal_node

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    with portal_node(tmp_path_factory.mktemp("portal-security")) as served:
        yield served


def browser_like(node: PortalNode) -> httpx.Client:
    """A client that keeps cookies and sends the Origin a browser sends with a form from this site."""
    return httpx.Client(timeout=30, headers={"Origin": node.url})


def paste_sign_in(node: PortalNode, client: httpx.Client) -> None:
    page = client.get(f"{node.url}/portal/signin")
    signed = client.post(
        f"{node.url}/portal/signin/passport",
        data={"csrf_token": csrf_token(page.text), "passport": node.demo.passport, "next": "/portal/requests"},
        follow_redirects=True,
    )
    assert signed.status_code == 200 and "You are signed in." in signed.text, signed.text[:500]


def request_form(node: PortalNode) -> dict[str, str]:
    return {"datasets": "demo-cohort", "primary": "GRU", "project_title": "forged", "institution": "Evil Corp"}


def requests_made(node: PortalNode) -> int:
    engine = create_engine(node.demo.settings.database_url)
    try:
        with Session(engine) as db:
            return len(list(db.scalars(select(AccessRequest).where(AccessRequest.project_title == "forged"))))
    finally:
        engine.dispose()


def test_a_form_without_this_sessions_token_or_from_another_site_changes_nothing(node: PortalNode) -> None:
    with browser_like(node) as victim, browser_like(node) as attacker:
        paste_sign_in(node, victim)
        paste_sign_in(node, attacker)
        attackers_token = csrf_token(attacker.get(f"{node.url}/portal/requests/new").text)
        own_token = csrf_token(victim.get(f"{node.url}/portal/requests/new").text)
        forged = [
            ({}, {}),  # no token at all
            ({"csrf_token": attackers_token}, {}),  # a valid token, of another session
            ({"csrf_token": own_token}, {"Origin": "https://evil.example"}),  # the right token, from another site
            ({"csrf_token": own_token}, {"Origin": "null"}),
        ]
        for extra, headers in forged:
            response = victim.post(f"{node.url}/portal/requests", data={**request_form(node), **extra}, headers=headers)
            assert response.status_code == 403, (extra, headers, response.status_code)
            assert "did not come from this site" in response.text
        assert requests_made(node) == 0, "a forged form made an access request"
        # The same form with the session's own token, from this site, works: the refusals were the attack's.
        made = victim.post(f"{node.url}/portal/requests", data={**request_form(node), "csrf_token": own_token})
        assert made.status_code == 303 and requests_made(node) == 1


def test_a_cookie_replayed_after_sign_out_opens_nothing(node: PortalNode) -> None:
    with browser_like(node) as client:
        paste_sign_in(node, client)
        stolen = dict(client.cookies)
        page = client.get(f"{node.url}/portal/requests")
        assert page.status_code == 200 and "My requests" in page.text
        client.post(f"{node.url}/portal/signout", data={"csrf_token": csrf_token(page.text)})
    with httpx.Client(timeout=30, cookies=stolen) as thief:
        replay = thief.get(f"{node.url}/portal/requests")
        assert replay.status_code == 303 and replay.headers["location"].startswith("/portal/signin"), replay.text


def test_cookie_flags_and_security_headers(node: PortalNode) -> None:
    with httpx.Client(timeout=30) as client:
        for path in ("/portal/", "/portal/signin", "/portal/datasets", "/portal/discover"):
            response = client.get(f"{node.url}{path}")
            assert response.status_code == 200
            policy = response.headers["content-security-policy"]
            assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
            assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["cache-control"] == "no-store"
        missing = client.get(f"{node.url}/portal/no/such/page")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
        assert "content-security-policy" in missing.headers, "an error page is a page too"
    with httpx.Client(timeout=30) as fresh:
        cookie = fresh.get(f"{node.url}/portal/signin").headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "path=/" in cookie


def test_a_stolen_session_row_is_neither_a_cookie_nor_a_passport(node: PortalNode) -> None:
    with browser_like(node) as client:
        paste_sign_in(node, client)
        cookie = client.cookies["genoshare_session"]
    engine = create_engine(node.demo.settings.database_url)
    try:
        with Session(engine) as db:
            rows = list(db.scalars(select(PortalSession).where(PortalSession.kind == "passport")))
    finally:
        engine.dispose()
    assert rows
    dumped = " ".join(f"{row.id} {row.data}" for row in rows)
    assert cookie not in dumped, "the database holds the cookie itself"
    assert node.demo.passport.split(".")[1][:40] not in dumped, "the database holds the passport readable"
    with httpx.Client(timeout=30, cookies={"genoshare_session": rows[-1].id}) as thief:
        assert thief.get(f"{node.url}/portal/requests").status_code == 303, "a row's id opened a session"


def test_authorization_codes_cannot_be_replayed_or_planted(node: PortalNode) -> None:
    with browser_like(node) as victim, browser_like(node) as attacker:
        # The attacker starts a sign-in and stops at the broker's answer, keeping its callback address.
        first = attacker.get(f"{node.url}/portal/signin/oidc", params={"login_hint": "demo-researcher"})
        at_broker = attacker.get(first.headers["location"])
        callback = at_broker.headers["location"]
        assert "/portal/signin/callback?" in callback and "code=" in callback
        # Planted in the victim's browser (login CSRF), it signs nobody in: the victim started no sign-in.
        victim.get(f"{node.url}/portal/")
        planted = victim.get(callback)
        assert planted.status_code == 401, planted.status_code
        assert "Signed in as" not in victim.get(f"{node.url}/portal/").text
        # A wrong state is refused even in the browser that started the sign-in.
        wrong = attacker.get(callback.replace("state=", "state=x"))
        assert wrong.status_code == 401
        # The attacker's own sign-in has now been used up, so the real callback fails too: one try per start.
        assert attacker.get(callback).status_code == 401
        # And a fresh, honest sign-in works, once; the same code again is refused by the broker.
        start = attacker.get(f"{node.url}/portal/signin/oidc", params={"login_hint": "demo-researcher"})
        good = attacker.get(attacker.get(start.headers["location"]).headers["location"])
        assert good.status_code == 303 and good.headers["location"] == "/portal/"
        assert "Signed in as demo-researcher@" in attacker.get(f"{node.url}/portal/").text


def test_no_token_or_code_in_any_address_or_log_line(node: PortalNode) -> None:
    with browser_like(node) as client:
        addresses = node.sign_in_http(client, "researcher")
        paste_sign_in(node, client)
    log = node.server.log
    codes = [part.split("code=", 1)[1].split("&", 1)[0] for part in addresses if "code=" in part]
    assert codes, addresses
    for code in codes:
        assert code not in log, "an authorization code reached the server's log"
    assert "/portal/signin/callback" in log, "the log does record the callback (without its query)"
    passport_body = node.demo.passport.split(".")[1]
    assert passport_body[:40] not in log, "a passport reached the server's log"
    assert not any(passport_body[:40] in address for address in addresses)
    assert not any("access_token" in address or "eyJ" in address for address in addresses), addresses
    assert Path(node.data_dir).exists()


def test_sign_in_never_sends_anyone_to_another_site(node: PortalNode) -> None:
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:alert(1)"):
        with browser_like(node) as client:
            page = client.get(f"{node.url}/portal/signin", params={"next": target})
            assert "evil.example" not in page.text and "javascript:" not in page.text
            signed = client.post(
                f"{node.url}/portal/signin/passport",
                data={"csrf_token": csrf_token(page.text), "passport": node.demo.passport, "next": target},
            )
            assert signed.status_code == 303 and signed.headers["location"] == "/portal/", (target, signed.headers)
            started = client.get(f"{node.url}/portal/signin/oidc", params={"next": target, "login_hint": "demo-dac"})
            back = client.get(client.get(started.headers["location"]).headers["location"])
            assert back.status_code == 303 and back.headers["location"] == "/portal/", (target, back.headers)
