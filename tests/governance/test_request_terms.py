"""What the portal's request form adds to an access request: a preview of the DUO match, the requester's
country and sector, the data access agreement they accepted (recorded with the grant), and documents
kept Crypt4GH-encrypted, readable by who may see the request only.
"""

from __future__ import annotations

import pytest
from sqlalchemy import update

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import Identity
from genoshare.duo.purpose import PurposeCategory, ResearchPurpose
from genoshare.errors import InvalidInput, NotFound, PermissionDenied
from genoshare.governance.requests import NewRequest, agreement_digest
from genoshare.node import Node, build_access_requests, build_documents
from genoshare.store.models import AccessRequest, Dataset, Grant

from governance_support import Cohort
from support import Passports

GRU = ResearchPurpose(primary=PurposeCategory.GRU)
AGREEMENT = "Use the data only for the project named; never try to identify anyone; cite the cohort."


def researcher(node: Node, issuer: VisaIssuer, subject: str = "ada") -> Identity:
    passports = Passports(issuer, subject=subject)
    affiliation = issuer.visa(subject, "AffiliationAndRole", "faculty@uni.example", by="system")
    return node.passports.verify(issuer.passport(subject, [passports.researcher_visa(), affiliation]))


def count_requests(node: Node) -> int:
    with node.database.sessions() as db:
        return len(list(db.query(AccessRequest)))


def test_preview_matches_each_dataset_and_makes_no_request(node: Node, issuer: VisaIssuer, cohort: Cohort) -> None:
    requests = build_access_requests(node)
    ada = researcher(node, issuer)
    preview = requests.preview(ada, ["cohort"], ResearchPurpose(primary=PurposeCategory.GRU, for_profit=True))
    assert preview["cohort"]["outcome"] == "DENY"
    assert any("not-for-profit" in reason for code in preview["cohort"]["codes"] for reason in code["reasons"])
    assert count_requests(node) == 0
    nobody = node.passports.verify(issuer.passport("eve", []))
    with pytest.raises(PermissionDenied):
        requests.preview(nobody, ["cohort"], GRU)


def test_country_sector_and_affiliation_are_recorded_and_checked(
    node: Node, issuer: VisaIssuer, cohort: Cohort
) -> None:
    requests = build_access_requests(node)
    ada = researcher(node, issuer)
    base = {"datasets": ["cohort"], "purpose": GRU, "project_title": "Study", "institution": "Uni"}
    for wrong in ({"country": "Kenya"}, {"country": "K1"}, {"sector": "military"}):
        with pytest.raises(InvalidInput):
            requests.submit(ada, NewRequest(**base, **wrong))  # type: ignore[arg-type]
    made = requests.submit(ada, NewRequest(**base, country="ke", sector="academic", contact_email="ada@uni.example"))  # type: ignore[arg-type]
    assert (made.country, made.sector, made.contact_email) == ("KE", "academic", "ada@uni.example")
    assert made.affiliation == "faculty@uni.example", "the affiliation comes from the passport, not the form"


def test_the_agreement_accepted_is_the_one_recorded_with_the_grant(
    node: Node, issuer: VisaIssuer, cohort: Cohort
) -> None:
    with node.database.session() as db:
        db.execute(update(Dataset).where(Dataset.id == "cohort").values(data_access_agreement=AGREEMENT))
    requests = build_access_requests(node)
    ada = researcher(node, issuer)
    purpose = ResearchPurpose(primary=PurposeCategory.DS, diseases=("MONDO:0005148",))
    base = {"datasets": ["cohort"], "purpose": purpose, "project_title": "T2D", "institution": "Uni"}
    with pytest.raises(InvalidInput, match="data access agreement"):
        requests.submit(ada, NewRequest(**base))  # type: ignore[arg-type]
    stale = {"cohort": agreement_digest("an older text of the agreement")}
    with pytest.raises(InvalidInput, match="as it reads now"):
        requests.submit(ada, NewRequest(**base, accepted_agreements=stale))  # type: ignore[arg-type]
    accepted = {"cohort": agreement_digest(AGREEMENT)}
    made = requests.submit(ada, NewRequest(**base, accepted_agreements=accepted))  # type: ignore[arg-type]
    assert made.agreements == accepted
    chair = node.passports.verify(Passports(issuer, subject="dac-chair").anonymous_researcher())
    requests.approve(made.id, chair, None)
    with node.database.sessions() as db:
        grant = db.query(Grant).filter(Grant.request_id == made.id).one()
    assert grant.agreement_sha256 == agreement_digest(AGREEMENT)


def test_documents_are_encrypted_and_read_only_by_who_may_see_the_request(
    node: Node, issuer: VisaIssuer, cohort: Cohort
) -> None:
    requests, documents = build_access_requests(node), build_documents(node)
    ada, eve = researcher(node, issuer), researcher(node, issuer, "eve")
    chair = node.passports.verify(Passports(issuer, subject="dac-chair").anonymous_researcher())
    made = requests.submit(ada, NewRequest(["cohort"], GRU, "Study", "Uni"))
    content = b"%PDF-1.4\nEthics committee approval no. 2026/17 for the study\n"
    stored = documents.attach(ada, made.id, "../../etc/IRB approval.pdf", content)
    assert stored.name == "IRB approval.pdf" and stored.media_type == "application/pdf"
    assert b"Ethics committee" not in node.objects.local_path(stored.blob_key).read_bytes()
    assert documents.read(ada, stored.id)[1] == content
    assert documents.read(chair, stored.id)[1] == content, "the dataset's committee reads it"
    with pytest.raises(NotFound):
        documents.read(eve, stored.id)
    with pytest.raises(NotFound):
        documents.attach(eve, made.id, "forged.pdf", b"%PDF")
    with pytest.raises(NotFound):  # only the requester attaches documents
        documents.attach(chair, made.id, "minutes.pdf", b"%PDF")
    for name, data in (("run.sh", b"#!/bin/sh"), ("empty.pdf", b"")):
        with pytest.raises(InvalidInput):
            documents.attach(ada, made.id, name, data)
    assert [d.id for d in documents.list(chair, made.id)] == [stored.id]
