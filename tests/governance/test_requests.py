"""Access requests: DUO match -> committee -> node-signed visa -> data; revocation stops it at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from genoshare.access.issuer import VisaIssuer
from genoshare.node import Node

from governance_support import COMMITTEE_MEMBER, Cohort, make_cohort
from support import Passports, bearer

DRS = "/ga4gh/drs/v1"
DIABETES_T2 = {"primary": "DS", "diseases": ["MONDO:0005148"]}


def request_body(purpose: dict, datasets: list[str] | None = None) -> dict:
    return {
        "datasets": datasets or ["cohort"],
        "purpose": purpose,
        "project_title": "T2D genetics",
        "institution": "Example University",
    }


def chair(issuer: VisaIssuer) -> dict[str, str]:
    return bearer(Passports(issuer, subject="dac-chair").anonymous_researcher())


def test_a_purpose_the_consent_permits_waits_for_the_committee(
    client: TestClient, cohort: Cohort, passports: Passports
) -> None:
    response = client.post(
        "/governance/requests", json=request_body(DIABETES_T2), headers=bearer(passports.anonymous_researcher())
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"
    match = body["match"]["cohort"]
    assert match["outcome"] == "PERMIT"
    reasons = " ".join(r for code in match["codes"] for r in code["reasons"])
    assert "MONDO:0005015" in reasons and "MONDO:0005148" in reasons


def test_a_for_profit_request_on_npu_data_is_rejected_with_the_reason(
    client: TestClient, cohort: Cohort, passports: Passports
) -> None:
    body = client.post(
        "/governance/requests",
        json=request_body({**DIABETES_T2, "for_profit": True}),
        headers=bearer(passports.anonymous_researcher()),
    ).json()
    assert body["status"] == "rejected"
    assert body["match"]["cohort"]["outcome"] == "DENY"
    assert "cohort" in body["reason"]


def test_auto_approvable_dataset_approves_a_fully_permitted_purpose(
    client: TestClient, node: Node, tmp_path: Path, passports: Passports
) -> None:
    make_cohort(node, tmp_path, ["DS:MONDO:0005015", "NPU"], auto_approve=True)
    body = client.post(
        "/governance/requests", json=request_body(DIABETES_T2), headers=bearer(passports.anonymous_researcher())
    ).json()
    assert body["status"] == "approved"
    assert body["decided_by"].startswith("genoshare (auto-approval")


def test_needs_review_is_not_auto_approved(
    client: TestClient, node: Node, tmp_path: Path, passports: Passports
) -> None:
    make_cohort(node, tmp_path, ["DS:MONDO:0005015", "IRB"], auto_approve=True)
    body = client.post(
        "/governance/requests", json=request_body(DIABETES_T2), headers=bearer(passports.anonymous_researcher())
    ).json()
    assert body["status"] == "pending"
    assert body["match"]["cohort"]["outcome"] == "NEEDS_REVIEW"


def test_requests_need_researcher_status_and_controlled_datasets(
    client: TestClient, cohort: Cohort, issuer: VisaIssuer
) -> None:
    no_status = issuer.passport("someone", [])
    assert (
        client.post("/governance/requests", json=request_body(DIABETES_T2), headers=bearer(no_status)).status_code
        == 403
    )
    assert client.post("/governance/requests", json=request_body(DIABETES_T2)).status_code == 401
    unknown = client.post(
        "/governance/requests",
        json=request_body(DIABETES_T2, ["nope"]),
        headers=bearer(Passports(issuer).anonymous_researcher()),
    )
    assert unknown.status_code == 404


def test_only_committee_members_decide(
    client: TestClient, cohort: Cohort, passports: Passports, issuer: VisaIssuer
) -> None:
    request_id = client.post(
        "/governance/requests", json=request_body(DIABETES_T2), headers=bearer(passports.anonymous_researcher())
    ).json()["id"]
    outsider = bearer(Passports(issuer, subject="not-on-committee").anonymous_researcher())
    assert client.post(f"/governance/requests/{request_id}/approve", json={}, headers=outsider).status_code == 403
    assert client.post(f"/governance/requests/{request_id}/approve", json={}, headers=chair(issuer)).status_code == 200
    again = client.post(f"/governance/requests/{request_id}/approve", json={}, headers=chair(issuer))
    assert again.status_code == 409


def test_committee_sees_pending_requests(
    client: TestClient, cohort: Cohort, passports: Passports, issuer: VisaIssuer
) -> None:
    client.post(
        "/governance/requests", json=request_body(DIABETES_T2), headers=bearer(passports.anonymous_researcher())
    )
    pending = client.get("/governance/requests?status=pending", headers=chair(issuer)).json()
    assert [r["requester"] for r in pending] == [f"researcher-1@{COMMITTEE_MEMBER.split('@', 1)[1]}"]
    stranger = bearer(Passports(issuer, subject="stranger").anonymous_researcher())
    assert client.get("/governance/requests", headers=stranger).json() == []


def test_approval_signs_a_visa_that_opens_the_data_and_revocation_closes_it(
    client: TestClient, cohort: Cohort, passports: Passports, issuer: VisaIssuer
) -> None:
    researcher = bearer(passports.anonymous_researcher())
    request_id = client.post("/governance/requests", json=request_body(DIABETES_T2), headers=researcher).json()["id"]
    assert client.get(f"{DRS}/objects/{cohort.multi.id}", headers=researcher).status_code == 403
    approved = client.post(
        f"/governance/requests/{request_id}/approve", json={"expires_on": "2099-12-31"}, headers=chair(issuer)
    )
    assert approved.json()["expires_at"].startswith("2099-12-31")

    issued = client.get("/governance/passport", headers=researcher).json()
    assert [g["dataset"] for g in issued["grants"]] == ["cohort"]
    node_passport = bearer(issued["passport"])
    jwks = client.get("/.well-known/jwks.json").json()
    assert jwks["keys"] and "d" not in jwks["keys"][0], "the JWKS must hold public keys only"

    assert client.get(f"{DRS}/objects/{cohort.multi.id}", headers=node_passport).status_code == 200
    access = client.get(f"{DRS}/objects/{cohort.multi.id}/access/https", headers=node_passport).json()
    ticket = dict(line.split(": ", 1) for line in access["headers"])
    assert client.get(f"/data/{cohort.multi.id}", headers={**ticket, "Range": "bytes=0-9"}).status_code == 206

    revoked = client.post(
        f"/governance/requests/{request_id}/revoke", json={"reason": "misuse reported"}, headers=chair(issuer)
    )
    assert revoked.json()["status"] == "revoked"
    # The ticket handed out before the revocation stops at its next range, and the visa opens nothing more.
    assert client.get(f"/data/{cohort.multi.id}", headers={**ticket, "Range": "bytes=10-19"}).status_code == 403
    assert client.get(f"{DRS}/objects/{cohort.multi.id}", headers=node_passport).status_code == 403
    assert client.get("/governance/passport", headers=researcher).json()["grants"] == []
    assert cohort.node.audit.verify().ok


@pytest.mark.parametrize(
    "body",
    [
        {"datasets": [], "purpose": DIABETES_T2, "project_title": "x", "institution": "y"},
        {"datasets": ["cohort"], "purpose": {"primary": "DS"}, "project_title": "x", "institution": "y"},
        {"datasets": ["cohort"], "purpose": {"primary": "ZZZ"}, "project_title": "x", "institution": "y"},
    ],
)
def test_malformed_requests_are_400(client: TestClient, cohort: Cohort, passports: Passports, body: dict) -> None:
    response = client.post("/governance/requests", json=body, headers=bearer(passports.anonymous_researcher()))
    assert response.status_code == 400
    assert response.json()["status_code"] == 400
