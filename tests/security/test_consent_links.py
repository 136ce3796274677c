"""Attacks on participants' consent links and sessions, through ``genoshare serve``.

A link's secret must never be left where others can read it (the server's log, the final address, a
Referer); a participant's session must open their own records only; a consent form without the session's
CSRF token must change nothing; a link the steward replaced must stop opening anything, sessions included.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from genoshare.demo.setup import COHORT_DATASET
from genoshare.store.models import Participant

from portal_support import PortalNode, csrf_token, issue_link, portal_node

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    with portal_node(tmp_path_factory.mktemp("consent-links")) as served:
        yield served


def people(node: PortalNode) -> dict[str, Participant]:
    engine = create_engine(node.demo.settings.database_url)
    try:
        with Session(engine) as db:
            rows = db.scalars(select(Participant).where(Participant.dataset_id == COHORT_DATASET))
            return {row.pseudonym: row for row in rows}
    finally:
        engine.dispose()


@contextmanager
def opened(node: PortalNode, link: str) -> Iterator[httpx.Client]:
    """A browser-like client that opened ``link``: it holds the participant's session cookie."""
    with httpx.Client(timeout=30, headers={"Origin": node.url}) as client:
        page = client.get(link, follow_redirects=True)
        assert page.status_code == 200 and "Your consent" in page.text, page.text[:300]
        yield client


def test_the_secret_never_reaches_the_log_the_final_address_or_a_referer(node: PortalNode) -> None:
    someone = sorted(people(node))[0]
    link, secret = issue_link(node, COHORT_DATASET, someone)
    with httpx.Client(timeout=30) as client:
        first = client.get(link)
        assert first.status_code == 303 and first.headers["location"] == "/portal/consent"
        assert first.headers["referrer-policy"] == "no-referrer"
        assert first.headers["cache-control"] == "no-store"
        final = client.get(link, follow_redirects=True)
        assert str(final.url) == f"{node.url}/portal/consent" and secret not in str(final.url)
        assert secret not in final.text, "the page does not repeat the secret"
        # A mistyped or forged link, with a query after it: also kept out of the log.
        wrong = client.get(f"{link}x?ref=mail", follow_redirects=True)
        assert str(wrong.url) == f"{node.url}/portal/consent/invalid" and wrong.status_code == 401
    log = node.server.log
    # uvicorn's access log line has the path with the secret rewritten; a log by route names the template.
    # (The route's template is /consent/{secret:consent_secret}: its secret is never a word like "narrow".)
    assert "/consent/[link]" in log or "/consent/{secret" in log, "the access log records the request"
    assert secret not in log and secret[:16] not in log, "the secret reached the server's log"


def test_a_participant_session_opens_only_its_own_records(node: PortalNode) -> None:
    alice, bob = sorted(people(node))[1:3]
    with opened(node, issue_link(node, COHORT_DATASET, alice)[0]) as mine:
        page = mine.get(f"{node.url}/portal/consent")
        assert alice in page.text and bob not in page.text
        token = csrf_token(page.text)
        bob_id = str(people(node)[bob].id)
        for path, form in [
            ("/portal/consent/narrow", {"participant": bob_id, "code": "NCU"}),
            ("/portal/consent/withdraw", {"participant": bob_id, "confirm": "yes"}),
            ("/portal/consent/matchmaking", {"participant": bob_id, "allow": "yes"}),
        ]:
            refused = mine.post(f"{node.url}{path}", data={**form, "csrf_token": token})
            assert refused.status_code == 403, (path, refused.status_code)
        after = people(node)[bob]
        assert after.consent_status == "active" and not after.consent_restrictions, "Bob's consent was changed"
        assert after.matchmaking is None, "Bob's matchmaking choice was made by someone else"


def test_consent_forms_without_the_sessions_token_change_nothing(node: PortalNode) -> None:
    carol, mallory = sorted(people(node))[3:5]
    carol_id = str(people(node)[carol].id)
    with (
        opened(node, issue_link(node, COHORT_DATASET, carol)[0]) as victim,
        opened(node, issue_link(node, COHORT_DATASET, mallory)[0]) as attacker,
    ):
        attackers_token = csrf_token(attacker.get(f"{node.url}/portal/consent").text)
        own_token = csrf_token(victim.get(f"{node.url}/portal/consent").text)
        form = {"participant": carol_id, "confirm": "yes"}
        for extra, headers in [
            ({}, {}),
            ({"csrf_token": attackers_token}, {}),
            ({"csrf_token": own_token}, {"Origin": "https://evil.example"}),
        ]:
            response = victim.post(f"{node.url}/portal/consent/withdraw", data={**form, **extra}, headers=headers)
            assert response.status_code == 403, (extra, headers)
        assert people(node)[carol].consent_status == "active", "a forged form withdrew Carol"
        done = victim.post(f"{node.url}/portal/consent/withdraw", data={**form, "csrf_token": own_token})
        assert done.status_code == 303 and people(node)[carol].consent_status == "withdrawn"


def test_a_replaced_link_opens_nothing_and_ends_its_sessions(node: PortalNode) -> None:
    dave = sorted(people(node))[5]
    old_link, _ = issue_link(node, COHORT_DATASET, dave)
    with opened(node, old_link) as session:
        issue_link(node, COHORT_DATASET, dave)  # the steward issues a new link: the old one was lost
        page = session.get(f"{node.url}/portal/consent")
        assert page.status_code == 403 and "no longer valid" in page.text
        assert dave not in page.text
    with httpx.Client(timeout=30) as client:
        again = client.get(old_link, follow_redirects=True)
        assert str(again.url).endswith("/portal/consent/invalid")
