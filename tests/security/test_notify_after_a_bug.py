"""A bug in mail delivery (here: a sender address the mail library itself trips over) turned against notices.

Through ``genoshare serve`` with a real webhook receiver: the mail of a new access request fails with an
error that is neither the network's nor the mail server's. The webhook must still hear of the request, the
next request's notice must still go out, and the server's log must name the request whose mail was lost
(never a notice dropped in silence, never a notify thread dead for every request after).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import init_node
from genoshare.settings import TrustedIssuer, load_settings
from genoshare.store.models import Dataset
from receivers import MailServer, WebhookReceiver, wait_for

from processes import Server
from support import TEST_ISSUER, TEST_PASSPORT_POLICY, Passports

pytestmark = pytest.mark.slow


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Server, WebhookReceiver, str]]:
    issuer = VisaIssuer.load_or_create(TEST_ISSUER, tmp_path / "issuer.jwk.json")
    issuer.write_jwks(tmp_path / "jwks.json")
    settings = load_settings(
        tmp_path / "node",
        database_url=f"sqlite:///{tmp_path / 'node.db'}",
        trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=tmp_path / "jwks.json")],
        passports=TEST_PASSPORT_POLICY,
    )
    built = init_node(settings)
    DatasetService(built.database).create(NewDataset("cohort", "A cohort", "Custodian", "controlled", ["GRU"]))
    with built.database.session() as session:
        row = session.get(Dataset, "cohort")
        assert row is not None
        row.committee_email = "dac@node.example"
    built.close()
    mail, hook = MailServer(tmp_path), WebhookReceiver(tmp_path)
    # "[" opens a domain literal that never closes: Python's mail library fails with an AttributeError.
    env = {**mail.env, "GENOSHARE_NOTIFY__SMTP__SENDER": "node@[broken", **hook.env}
    server = Server(settings.data_dir, {"GENOSHARE_DATABASE_URL": settings.database_url, **env})
    passports = Passports(issuer, subject="researcher-1")
    passport = issuer.passport("researcher-1", [passports.researcher_visa()])
    try:
        yield server, hook, passport
    finally:
        server.stop()
        hook.stop()
        mail.stop()


def submit(server: Server, passport: str, title: str) -> str:
    body = {"datasets": ["cohort"], "purpose": {"primary": "GRU"}, "project_title": title, "institution": "Uni"}
    response = httpx.post(
        f"{server.url}/governance/requests", headers={"Authorization": f"Bearer {passport}"}, json=body, timeout=30
    )
    assert response.status_code in (200, 201), response.text
    return str(response.json()["id"])


def test_a_mail_bug_loses_no_webhook_notice_and_is_logged_with_the_request(
    served: tuple[Server, WebhookReceiver, str],
) -> None:
    server, hook, passport = served
    first, second = submit(server, passport, "first"), submit(server, passport, "second")

    def both_posted() -> set[str] | None:
        seen = {str(json.loads(post["body"]).get("request")) for post in hook.posts()}
        return seen if {first, second} <= seen else None

    assert wait_for(both_posted), "the webhook did not hear of both requests"
    log = wait_for(lambda: server.log if first in server.log and second in server.log else None)
    assert "could not mail" in log
