"""A committee member's journey in a real Chromium: mailed by a real SMTP server, opens the inbox, approves.

The node is served with its mail settings pointing at an ``aiosmtpd`` process; the researcher asks over the
API, and the mails are read from what that process received.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, update
from sqlalchemy.orm import Session

from genoshare.demo.setup import COHORT_DATASET
from genoshare.store.models import Dataset
from receivers import MailServer, WebhookReceiver, body, wait_for

from browser import Tab, check_page, keyboard_walk
from portal_support import PortalNode
from portal_support import portal_node as start_portal_node

pytestmark = pytest.mark.slow

COMMITTEE_MAIL = "dac@cohort.example"
PROJECT = "Kidney function in ageing"


@pytest.fixture(scope="module")
def mail(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    server = MailServer(tmp_path_factory.mktemp("mail"))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def hook(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(tmp_path_factory.mktemp("hook"))
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def portal_node(
    tmp_path_factory: pytest.TempPathFactory, mail: MailServer, hook: WebhookReceiver
) -> Iterator[PortalNode]:
    with start_portal_node(tmp_path_factory.mktemp("committee"), env={**mail.env, **hook.env}) as node:
        engine = create_engine(node.demo.settings.database_url)
        with Session(engine) as db, db.begin():
            db.execute(update(Dataset).where(Dataset.id == COHORT_DATASET).values(committee_email=COMMITTEE_MAIL))
        engine.dispose()
        yield node


def submit(portal_node: PortalNode) -> str:
    response = httpx.post(
        f"{portal_node.url}/governance/requests",
        headers={"Authorization": f"Bearer {portal_node.demo.researcher_passport_without_grant}"},
        json={
            "datasets": [COHORT_DATASET],
            "purpose": {"primary": "HMB"},
            "project_title": PROJECT,
            "institution": "University of Nairobi",
            "country": "KE",
            "sector": "academic",
            "contact_email": "ada@uni.example",
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "pending"
    return str(response.json()["id"])


def test_the_committee_is_mailed_opens_the_inbox_and_approves_with_a_note(
    portal_node: PortalNode, mail: MailServer, hook: WebhookReceiver, tab: Callable[..., Tab], tmp_path: Path
) -> None:
    request_id = submit(portal_node)
    notice = mail.wait_for(lambda m: PROJECT in str(m["Subject"]))
    assert COMMITTEE_MAIL in notice["To"]
    text = body(notice)
    found = re.search(r"(http://\S+/portal/committee/requests/\S+)", text)
    assert found and found.group(1).endswith(request_id), text

    member = tab()
    portal_node.sign_in(member, "committee", next="/portal/committee")
    page = member.page
    assert page.get_by_role("heading", name="Waiting for your decision").is_visible()
    assert page.get_by_role("link", name=PROJECT).is_visible()
    check_page(member, "committee-inbox")

    page.goto(found.group(1))  # the link in the mail
    assert page.get_by_role("heading", name=PROJECT, level=1).is_visible()
    assert page.get_by_text("University of Nairobi").is_visible()
    assert page.get_by_text("KE · academic").is_visible()
    assert page.get_by_text("demo-researcher@").first.is_visible()
    assert page.get_by_text("Consent permits").is_visible()
    # Each code explained, with the matcher's reason.
    assert page.get_by_text("The data may be used only by not-for-profit organisations.").is_visible()
    check_page(member, "committee-request")
    stops = keyboard_walk(page, steps=60)
    assert any(stop["text"] == "Approve" for stop in stops), "Approve is reachable by keyboard"

    page.get_by_label("Last day of access").fill("2030-12-31")
    page.get_by_label("Note or conditions for the researcher (optional)").fill("Cite the cohort; no re-identification.")
    page.get_by_role("button", name="Approve").click()
    assert page.get_by_text("Approved: demo-cohort.").is_visible()
    assert page.get_by_text("Cite the cohort; no re-identification.").is_visible()
    check_page(member, "committee-request-approved")

    decided = mail.wait_for(lambda m: "approved" in str(m["Subject"]) and PROJECT in str(m["Subject"]))
    assert "ada@uni.example" in decided["To"]
    assert "Cite the cohort; no re-identification." in body(decided)
    # The webhook got both notices, each signed with the shared secret over its timestamp and body.
    posts = wait_for(lambda: hook.posts() if len(hook.posts()) >= 2 else None)
    events = [json.loads(post["body"]) for post in posts]
    assert [e["event"] for e in events] == ["access_request.submitted", "access_request.approved"]
    assert events[1]["request"] == request_id and events[1]["note"].endswith("Cite the cohort; no re-identification.")
    secret = hook.secret_file.read_bytes().strip()
    for post in posts:
        headers = {name.lower(): value for name, value in post["headers"].items()}
        fields = dict(part.split("=", 1) for part in headers["x-genoshare-signature"].split(","))
        signed = hmac.new(secret, fields["t"].encode() + b"." + post["body"].encode(), hashlib.sha256)
        assert hmac.compare_digest(fields["v1"], signed.hexdigest())

    page.goto(f"{portal_node.url}/portal/committee")
    assert page.get_by_text("Nothing waits for your decision.").is_visible()
    assert page.get_by_role("link", name=PROJECT).is_visible(), "the decided request is in the history"
