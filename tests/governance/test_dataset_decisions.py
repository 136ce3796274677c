"""Each dataset of a multi-dataset request is decided by its own committee; decisions and requests are mailed."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

import receivers
from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.duo.purpose import ResearchPurpose
from genoshare.errors import Conflict, InvalidInput, PermissionDenied
from genoshare.governance.notify import Notifier
from genoshare.governance.report import access_report
from genoshare.governance.requests import AccessRequests, NewRequest
from genoshare.node import Node, build_access_requests, build_ingestor
from genoshare.settings import NotifySettings, SmtpSettings
from genoshare.store.models import Grant
from receivers import MailServer, body

from governance_support import COMMITTEE_MEMBER, Cohort, make_cohort
from support import TEST_ISSUER, Passports, bearer

mail_server = receivers.mail_server
OTHER_MEMBER = f"biobank-chair@{TEST_ISSUER}"


@pytest.fixture
def two_datasets(node: Node, tmp_path: Path) -> Cohort:
    cohort = make_cohort(node, tmp_path, ["HMB"])
    datasets = DatasetService(node.database)
    datasets.create(
        NewDataset(
            id="biobank", title="Biobank", custodian="Example Hospital", access_level="controlled", duo_codes=["GRU"]
        )
    )
    datasets.set_committee("biobank", [OTHER_MEMBER], False)
    copy = tmp_path / "biobank.vcf.gz"
    shutil.copy(tmp_path / "single.vcf.gz", copy)
    build_ingestor(node).ingest("biobank", [copy])
    return cohort


def identity(node: Node, issuer: VisaIssuer, subject: str):  # type: ignore[no-untyped-def]
    return node.passports.verify(Passports(issuer, subject=subject).anonymous_researcher())


def requests_with_mail(node: Node, mail: MailServer) -> AccessRequests:
    service = build_access_requests(node)
    service.notifier = Notifier(
        NotifySettings(smtp=SmtpSettings(host="127.0.0.1", port=mail.port, sender="node@x.org"))
    )
    with node.database.session() as session:
        from genoshare.store.models import Dataset

        for dataset in session.scalars(select(Dataset)):
            dataset.committee_email = f"dac-{dataset.id}@x.org"
    return service


def test_each_committee_decides_its_own_dataset(
    node: Node, two_datasets: Cohort, issuer: VisaIssuer, mail_server: MailServer
) -> None:
    service = requests_with_mail(node, mail_server)
    researcher = identity(node, issuer, "ada")
    request = service.submit(
        researcher,
        NewRequest(
            ["cohort", "biobank"],
            ResearchPurpose(primary="HMB"),
            "Kidney ageing",
            "Example University",
            country="ke",
            sector="academic",
            contact_email="ada@uni.example",
        ),
    )
    assert request.status == "pending"
    new = mail_server.wait_for(lambda m: "New access request: Kidney ageing" in str(m["Subject"]))
    assert "dac-cohort@x.org" in new["To"] and "dac-biobank@x.org" in new["To"]
    assert f"/portal/committee/requests/{request.id}" in body(new)

    cohort_chair, biobank_chair = identity(node, issuer, "dac-chair"), identity(node, issuer, "biobank-chair")
    assert cohort_chair.actor == COMMITTEE_MEMBER and biobank_chair.actor == OTHER_MEMBER
    with pytest.raises(PermissionDenied):
        service.decide_dataset(request.id, "biobank", cohort_chair, "approve", "ok")
    with pytest.raises(InvalidInput):
        service.decide_dataset(request.id, "biobank", biobank_chair, "reject", "  ")

    after = service.decide_dataset(request.id, "cohort", cohort_chair, "approve", "Publish with the consortium")
    assert after.status == "pending", "the biobank's committee has not decided yet"
    with node.database.sessions() as session:
        grants = list(session.scalars(select(Grant).where(Grant.request_id == request.id)))
    assert [(g.dataset_id, g.note) for g in grants] == [("cohort", "Publish with the consortium")]
    approved = mail_server.wait_for(lambda m: "approved" in str(m["Subject"]))
    assert "ada@uni.example" in approved["To"] and "Publish with the consortium" in body(approved)

    after = service.decide_dataset(request.id, "biobank", biobank_chair, "reject", "Kidney data not consented")
    assert after.status == "approved", "one dataset approved: the request stands for it"
    assert after.decisions["biobank"]["status"] == "rejected"
    with pytest.raises(Conflict):
        service.decide_dataset(request.id, "biobank", biobank_chair, "approve")

    service.decide_dataset(request.id, "cohort", cohort_chair, "revoke", "Conditions broken")
    with node.database.sessions() as session:
        grant = session.scalar(select(Grant).where(Grant.request_id == request.id))
    assert grant is not None and grant.revoked_at is not None
    final = service.get(request.id, researcher)
    assert final.status == "revoked"

    report = access_report(node.database, "biobank")
    groups = {g.name: g for g in report.by("country")}
    assert groups["KE"].requests == 1 and groups["KE"].approved == 0
    assert report.denial_reasons == [("Kidney data not consented", 1)]
    assert "KE,academic" in report.csv()


def test_the_api_decides_one_dataset_for_its_committee(
    client: TestClient, cohort: Cohort, passports: Passports, issuer: VisaIssuer
) -> None:
    researcher = bearer(passports.anonymous_researcher())
    purpose = {"primary": "DS", "diseases": ["MONDO:0005148"]}
    body = {"datasets": ["cohort"], "purpose": purpose, "project_title": "T", "institution": "U"}
    made = client.post("/governance/requests", json=body, headers=researcher).json()
    url = f"/governance/requests/{made['id']}/datasets/cohort"
    assert client.post(f"{url}/approve", json={}, headers=researcher).status_code == 403
    assert client.post(f"{url}/bless", json={}, headers=chair(issuer)).status_code in (400, 422)
    decided = client.post(
        f"{url}/approve", json={"note": "Cite the cohort", "expires_on": "2030-01-31"}, headers=chair(issuer)
    )
    assert decided.status_code == 200, decided.text
    answer = decided.json()
    assert answer["status"] == "approved"
    assert answer["decisions"]["cohort"]["note"] == "approved until 2030-01-31; Cite the cohort"
    again = client.post(f"{url}/approve", json={}, headers=chair(issuer))
    assert again.status_code == 409


def chair(issuer: VisaIssuer) -> dict[str, str]:
    return bearer(Passports(issuer, subject="dac-chair").anonymous_researcher())
