"""A flood of cookie-less page views (a crawler, or someone filling the session table), through ``genoshare serve``.

Pages shown to a visitor must make no session row: their forms carry a signed token bound to a random
value in the visitor's own cookie instead. A row is made only when a visitor's form (token checked) needs
one: signing in, choosing a language. The token of one visitor must not pass with another's cookie or with
none, and following the broker sign-in link leaves no row either.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from genoshare.store.models import PortalSession

from portal_support import PortalNode, csrf_token, portal_node

pytestmark = pytest.mark.slow
PAGES = ("/portal/", "/portal/signin", "/portal/datasets", "/portal/discover", "/portal/nothing", "/portal/requests")


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    with portal_node(tmp_path_factory.mktemp("visitor-flood")) as served:
        yield served


def rows(node: PortalNode) -> int:
    engine = create_engine(node.demo.settings.database_url)
    try:
        with Session(engine) as db:
            return int(db.scalar(select(func.count()).select_from(PortalSession)) or 0)
    finally:
        engine.dispose()


def test_two_hundred_cookieless_page_views_make_no_session_row(node: PortalNode) -> None:
    before = rows(node)
    for number in range(200):
        path = PAGES[number % len(PAGES)]
        with httpx.Client(timeout=30) as crawler:  # a fresh client each time: no cookie ever sent back
            page = crawler.get(f"{node.url}{path}")
            assert page.status_code in (200, 303, 404), (path, page.status_code)
    for _ in range(20):  # the sign-in link a crawler finds on the sign-in page
        with httpx.Client(timeout=30) as crawler:
            started = crawler.get(f"{node.url}/portal/signin/oidc")
            assert started.status_code == 303 and started.headers["location"].startswith(node.broker_url)
    assert rows(node) == before, "a visitor's page views filled the session table"


def test_a_visitors_token_works_only_with_its_own_cookie(node: PortalNode) -> None:
    with httpx.Client(timeout=30, headers={"Origin": node.url}) as visitor, httpx.Client(timeout=30) as other:
        token = csrf_token(visitor.get(f"{node.url}/portal/signin").text)
        other.get(f"{node.url}/portal/signin")
        form = {"lang": "fr", "next": "/portal/", "csrf_token": token}
        before = rows(node)
        # The token without its cookie, and with another visitor's cookie: refused, no row.
        bare = httpx.post(f"{node.url}/portal/language", data=form, headers={"Origin": node.url}, timeout=30)
        assert bare.status_code == 403
        with httpx.Client(timeout=30, cookies=other.cookies, headers={"Origin": node.url}) as thief:
            assert thief.post(f"{node.url}/portal/language", data=form).status_code == 403
        # A made-up token with a real cookie: refused.
        forged = visitor.post(f"{node.url}/portal/language", data={**form, "csrf_token": "0" * 64})
        assert forged.status_code == 403
        assert rows(node) == before
        # The visitor's own form works, and only now a row is made: the language must be kept somewhere.
        chosen = visitor.post(f"{node.url}/portal/language", data=form)
        assert chosen.status_code == 303 and rows(node) == before + 1
        assert 'lang="fr"' in visitor.get(f"{node.url}/portal/").text


def test_signing_in_from_a_stateless_page_works_and_the_visitor_token_does_not_outlive_it(node: PortalNode) -> None:
    with httpx.Client(timeout=30, headers={"Origin": node.url}) as client:
        visitor_token = csrf_token(client.get(f"{node.url}/portal/signin").text)
        signed = client.post(
            f"{node.url}/portal/signin/passport",
            data={"csrf_token": visitor_token, "passport": node.demo.passport, "next": "/portal/requests"},
            follow_redirects=True,
        )
        assert signed.status_code == 200 and "You are signed in." in signed.text
        # Signed in, a form needs the session's own token: the visitor's signed one is not enough.
        out = client.post(f"{node.url}/portal/signout", data={"csrf_token": visitor_token})
        assert out.status_code == 403
        assert client.get(f"{node.url}/portal/requests").status_code == 200
