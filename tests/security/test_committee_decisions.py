"""Attacks on the committee inbox through ``genoshare serve``: deciding another committee's dataset, forged forms.

A request names two datasets with different committees; the demo cohort's member, signed in with their
passport, tries to decide the other committee's dataset with a valid form of their own session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.demo.setup import COHORT_DATASET
from genoshare.node import Node
from genoshare.settings import load_settings
from genoshare.store.models import AccessRequest, Grant

from portal_support import PortalNode, csrf_token, portal_node

pytestmark = pytest.mark.slow
OTHER = "other-cohort"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalNode]:
    with portal_node(tmp_path_factory.mktemp("committee-security")) as served:
        opened = Node.open(load_settings(served.data_dir))
        datasets = DatasetService(opened.database)
        datasets.create(
            NewDataset(
                id=OTHER, title="Another cohort", custodian="Elsewhere", access_level="controlled", duo_codes=["GRU"]
            )
        )
        datasets.set_committee(OTHER, ["someone-else@https://elsewhere.example"], False)
        opened.close()
        yield served


@contextmanager
def signed_in(node: PortalNode, passport: str) -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30, headers={"Origin": node.url}) as client:
        page = client.get(f"{node.url}/portal/signin")
        signed = client.post(
            f"{node.url}/portal/signin/passport",
            data={"csrf_token": csrf_token(page.text), "passport": passport, "next": "/portal/"},
            follow_redirects=True,
        )
        assert signed.status_code == 200 and "You are signed in." in signed.text
        yield client


def two_dataset_request(node: PortalNode) -> str:
    response = httpx.post(
        f"{node.url}/governance/requests",
        headers={"Authorization": f"Bearer {node.demo.researcher_passport_without_grant}"},
        json={
            "datasets": [COHORT_DATASET, OTHER],
            "purpose": {"primary": "HMB"},
            "project_title": "Two cohorts",
            "institution": "Somewhere",
        },
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def state(node: PortalNode, request_id: str) -> tuple[dict[str, object], list[str]]:
    engine = create_engine(node.demo.settings.database_url)
    try:
        with Session(engine) as db:
            request = db.get(AccessRequest, request_id)
            assert request is not None
            grants = [g.dataset_id for g in db.scalars(select(Grant).where(Grant.request_id == request_id))]
            return dict(request.decisions or {}), grants
    finally:
        engine.dispose()


def test_a_member_cannot_decide_another_committees_dataset(node: PortalNode) -> None:
    request_id = two_dataset_request(node)
    member_passport = node.demo.committee_passport_file.read_text().strip()
    with signed_in(node, member_passport) as member:
        page = member.get(f"{node.url}/portal/committee/requests/{request_id}")
        assert page.status_code == 200 and "Another committee decides this dataset." in page.text
        token = csrf_token(page.text)
        url = f"{node.url}/portal/committee/requests/{request_id}/decide"
        for decision in ("approve", "reject"):
            refused = member.post(url, data={"csrf_token": token, "dataset": OTHER, "decision": decision, "note": "x"})
            assert refused.status_code == 403, (decision, refused.status_code)
        assert state(node, request_id) == ({}, []), "the other committee's dataset was decided"
        # Without the session's token, not even their own dataset.
        forged = member.post(url, data={"dataset": COHORT_DATASET, "decision": "approve"})
        assert forged.status_code == 403 and state(node, request_id) == ({}, [])
        # Their own dataset, with their own form: decided, and only it.
        done = member.post(url, data={"csrf_token": token, "dataset": COHORT_DATASET, "decision": "approve"})
        assert done.status_code == 303
        decisions, grants = state(node, request_id)
        assert set(decisions) == {COHORT_DATASET} and grants == [COHORT_DATASET]


def test_a_researcher_has_no_inbox(node: PortalNode) -> None:
    request_id = two_dataset_request(node)
    with signed_in(node, node.demo.researcher_passport_without_grant) as researcher:
        assert researcher.get(f"{node.url}/portal/committee").status_code == 403
        page = researcher.get(f"{node.url}/portal/committee/requests/{request_id}")
        assert page.status_code == 403
        token = csrf_token(researcher.get(f"{node.url}/portal/requests").text)
        url = f"{node.url}/portal/committee/requests/{request_id}/decide"
        refused = researcher.post(url, data={"csrf_token": token, "dataset": COHORT_DATASET, "decision": "approve"})
        assert refused.status_code == 403 and state(node, request_id) == ({}, [])
