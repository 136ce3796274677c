"""A withdrawn participant's consent choices, changed afterwards: refused in plain words, never recorded.

Through ``genoshare serve`` (the demo node and its portal): after withdrawing, the same person (portal
session, and the API with the link's secret) tries to narrow, widen and allow matchmaking. Each attempt
must be refused with a page that says why, and the person's record must stay as withdrawal left it: a
choice recorded after withdrawal would tell a steward or an auditor that the person still takes part.
"""

from __future__ import annotations

from collections.abc import Iterator

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
    with portal_node(tmp_path_factory.mktemp("after-withdrawal")) as served:
        yield served


def person(node: PortalNode, pseudonym: str) -> Participant:
    engine = create_engine(node.demo.settings.database_url)
    try:
        with Session(engine) as db:
            row = db.scalar(
                select(Participant).where(Participant.dataset_id == COHORT_DATASET, Participant.pseudonym == pseudonym)
            )
            assert row is not None
            return row
    finally:
        engine.dispose()


def test_no_choice_is_recorded_after_withdrawal(node: PortalNode) -> None:
    engine = create_engine(node.demo.settings.database_url)
    with Session(engine) as db:
        pseudonym = sorted(db.scalars(select(Participant.pseudonym)))[0]
    engine.dispose()
    link, secret = issue_link(node, COHORT_DATASET, pseudonym)
    before = person(node, pseudonym)
    with httpx.Client(timeout=30, headers={"Origin": node.url}) as client:
        page = client.get(link, follow_redirects=True)
        token = csrf_token(page.text)
        done = client.post(
            f"{node.url}/portal/consent/withdraw",
            data={"participant": str(before.id), "confirm": "yes", "csrf_token": token},
        )
        assert done.status_code == 303 and person(node, pseudonym).consent_status == "withdrawn"
        withdrawn = person(node, pseudonym)
        token = csrf_token(client.get(f"{node.url}/portal/consent").text)
        for path, form in [
            ("narrow", {"code": "NCU"}),
            ("widen", {"code": "NCU"}),
            ("matchmaking", {"allow": "yes"}),
        ]:
            data = {"participant": str(before.id), "csrf_token": token, **form}
            refused = client.post(f"{node.url}/portal/consent/{path}", data=data)
            assert refused.status_code == 409, (path, refused.status_code)
            assert "You have withdrawn your consent" in refused.text and "steward" in refused.text
    headers = {"X-Consent-Token": secret}
    for path, body in [("narrow", {"codes": ["NCU"]}), ("matchmaking", {"allow": True})]:
        answer = httpx.post(f"{node.url}/consent/{path}", json=body, headers=headers, timeout=30)
        assert answer.status_code == 409, (path, answer.status_code, answer.text)
        assert "withdrawn" in answer.text
    after = person(node, pseudonym)
    assert after.consent_restrictions == withdrawn.consent_restrictions and after.matchmaking is None
    assert after.consent_updated_at == withdrawn.consent_updated_at, "a choice was recorded after withdrawal"
