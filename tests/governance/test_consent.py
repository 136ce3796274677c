"""Dynamic consent: participants see, narrow and withdraw; a withdrawal reaches every API within a second."""

from __future__ import annotations

import gzip
import time
from pathlib import Path

import pysam
import pytest
from fastapi.testclient import TestClient

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.index.published import index_dir
from genoshare.index.stored import kept_in_store
from genoshare.node import Node, build_consent, build_ingestor, build_rederiver
from genoshare.store.blobs import copy_plaintext, is_plaintext
from genoshare.store.models import DataObject

from governance_support import COMMITTEE_MEMBER, VCF, Cohort, make_cohort
from support import OPERATOR, Passports, bearer

DRS = "/ga4gh/drs/v1"


def token_for(cohort: Cohort, source_name: str) -> dict[str, str]:
    service = build_consent(cohort.node)
    participant = service.find("cohort", cohort.pseudonyms[source_name])
    return {"X-Consent-Token": service.issue_link(participant, OPERATOR.actor)}


def stored_samples(node: Node, object_id: str, tmp_path: Path) -> list[str]:
    with node.database.sessions() as session:
        row = session.get(DataObject, object_id)
    plain = tmp_path / f"check-{row.sha256}.vcf.gz"
    copy_plaintext(node.objects, node.keys.secret, row, plain)
    with pysam.VariantFile(str(plain)) as variants:
        return list(variants.header.samples)


def test_a_participant_sees_their_record_and_files(client: TestClient, cohort: Cohort) -> None:
    record = client.get("/consent", headers=token_for(cohort, "NA00002")).json()
    assert record["participant"] == cohort.pseudonyms["NA00002"]
    assert record["status"] == "active"
    assert sorted(record["files"]) == sorted([cohort.multi.id, cohort.single.id])
    assert "NA00002" not in str(record), "the participant's source name is never served"


def test_consent_needs_the_participants_own_token(client: TestClient, cohort: Cohort) -> None:
    assert client.get("/consent").status_code == 401
    assert client.get("/consent", headers={"X-Consent-Token": "guess"}).status_code == 401
    old = token_for(cohort, "NA00001")
    token_for(cohort, "NA00001")
    assert client.get("/consent", headers=old).status_code == 401, "a new link replaces the old one"


def test_narrowing_adds_modifiers_only(client: TestClient, cohort: Cohort) -> None:
    token = token_for(cohort, "NA00001")
    narrowed = client.post("/consent/narrow", json={"codes": ["NCU"]}, headers=token).json()
    assert narrowed["restrictions"] == ["NCU"]
    widened = client.post("/consent/narrow", json={"codes": ["GRU"]}, headers=token)
    assert widened.status_code == 400
    assert client.post("/consent/narrow", json={"codes": ["XYZ"]}, headers=token).status_code == 400


@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_withdrawal_blocks_files_at_once_and_rewrites_shared_ones(
    client: TestClient, cohort: Cohort, passports: Passports, tmp_path: Path
) -> None:
    headers = bearer(passports.with_grant("cohort"))
    assert client.get(f"{DRS}/objects/{cohort.single.id}", headers=headers).status_code == 200
    access = client.get(f"{DRS}/objects/{cohort.single.id}/access/https", headers=headers).json()
    ticket = dict(line.split(": ", 1) for line in access["headers"])

    # The very next requests after the withdrawal answer are refused: nothing waits for a cache to expire.
    answer = client.post("/consent/withdraw", headers=token_for(cohort, "NA00002")).json()
    single_blocked = client.get(f"{DRS}/objects/{cohort.single.id}", headers=headers).status_code
    ticket_blocked = client.get(f"/data/{cohort.single.id}", headers=ticket).status_code
    assert answer["status"] == "withdrawn"
    assert answer["unavailable"] == [cohort.single.id]
    assert answer["rederiving"] == [cohort.multi.id]
    assert (single_blocked, ticket_blocked) == (403, 403)

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if client.get(f"{DRS}/objects/{cohort.multi.id}", headers=headers).status_code == 200:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the shared file was not re-derived within 30 s")
    remaining = stored_samples(cohort.node, cohort.multi.id, tmp_path)
    assert remaining == [cohort.pseudonyms["NA00001"], cohort.pseudonyms["NA00003"]]
    body = client.get(f"{DRS}/objects/{cohort.multi.id}/access/https", headers=headers).json()
    fetched = client.get(f"/data/{cohort.multi.id}", headers=dict(line.split(": ", 1) for line in body["headers"]))
    assert cohort.pseudonyms["NA00002"] not in gzip.decompress(fetched.content).decode()
    assert cohort.node.audit.verify().ok
    # The old file's Beacon index (the withdrawn person's carrier bits) goes, from the bucket or the disk,
    # once the new file's index is built (after the new file is served).
    node, old_index = cohort.node, index_dir("cohort", cohort.multi)

    def indexes() -> tuple[bool, int]:
        if kept_in_store(node.objects):
            keys = [k for k in node.objects.keys("beacon/") if k.endswith("/variants.arrow")]
            return any(k.startswith(f"{old_index}/") for k in keys), len(keys)
        found = list(node.settings.data_dir.glob("beacon/cohort/*/variants.arrow"))
        return (node.settings.data_dir / old_index).exists(), len(found)

    deadline = time.monotonic() + 30
    while indexes() != (False, 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert indexes() == (False, 2)  # the single-sample file's and the re-derived file's


def test_withdrawal_rewrites_files_a_public_dataset_stores_unencrypted(node: Node, tmp_path: Path) -> None:
    DatasetService(node.database).create(
        NewDataset(
            id="open", title="Open", custodian="C", access_level="public", duo_codes=["GRU"], store_plaintext=True
        )
    )
    shared = build_ingestor(node).ingest("open", [VCF]).published[0]
    assert is_plaintext(shared.blob_key)
    consent = build_consent(node)
    first, *others = consent.records("open")
    withdrawal = consent.withdraw(consent.find("open", first.participant), OPERATOR.actor)
    assert withdrawal.rederiving == (shared.id,)
    assert build_rederiver(node).rederive_pending().done == [shared.id]
    remaining = stored_samples(node, shared.id, tmp_path)
    assert sorted(remaining) == sorted(record.participant for record in others)


def test_usage_report_names_users_and_purposes(client: TestClient, cohort: Cohort, passports: Passports) -> None:
    researcher = bearer(passports.anonymous_researcher())
    request = client.post(
        "/governance/requests",
        json={
            "datasets": ["cohort"],
            "purpose": {"primary": "DS", "diseases": ["MONDO:0005148"]},
            "project_title": "T2D genetics",
            "institution": "Example University",
        },
        headers=researcher,
    ).json()
    chair = bearer(Passports(passports.issuer, subject=COMMITTEE_MEMBER.split("@")[0]).anonymous_researcher())
    client.post(f"/governance/requests/{request['id']}/approve", json={}, headers=chair)
    node_passport = bearer(client.get("/governance/passport", headers=researcher).json()["passport"])
    access = client.get(f"{DRS}/objects/{cohort.single.id}/access/https", headers=node_passport).json()
    client.get(
        f"/data/{cohort.single.id}",
        headers={**dict(h.split(": ", 1) for h in access["headers"]), "Range": "bytes=0-99"},
    )

    report = client.get("/governance/datasets/cohort/usage", headers=chair).json()
    assert len(report) == 1
    assert report[0]["projects"] == ["T2D genetics (Example University)"]
    assert report[0]["purposes"] == ["DS MONDO:0005148"]
    assert report[0]["bytes_served"] == 100
    mine = client.get("/consent/usage", headers=token_for(cohort, "NA00002")).json()
    assert [use["user"] for use in mine] == [report[0]["user"]]
    others = client.get("/consent/usage", headers=token_for(cohort, "NA00001")).json()
    assert others == [] or cohort.single.id not in others[0]["resources"]
    assert client.get("/governance/datasets/cohort/usage", headers=researcher).status_code == 403


def test_narrowed_consent_excludes_the_person_from_a_conflicting_grant(
    client: TestClient, node: Node, tmp_path: Path, passports: Passports
) -> None:
    cohort = make_cohort(node, tmp_path, ["GRU"])
    client.post("/consent/narrow", json={"codes": ["NCU"]}, headers=token_for(cohort, "NA00002"))
    researcher = bearer(passports.anonymous_researcher())
    chair = bearer(Passports(passports.issuer, subject=COMMITTEE_MEMBER.split("@")[0]).anonymous_researcher())
    commercial = client.post(
        "/governance/requests",
        headers=researcher,
        json={
            "datasets": ["cohort"],
            "purpose": {"primary": "GRU", "commercial": True},
            "project_title": "Drug target search",
            "institution": "Pharma Ltd",
        },
    ).json()
    excluded = commercial["match"]["cohort"]["excluded_participants"]
    assert [entry["participant"] for entry in excluded] == [cohort.pseudonyms["NA00002"]]
    assert excluded[0]["reasons"], "the committee sees why"
    client.post(f"/governance/requests/{commercial['id']}/approve", json={}, headers=chair)
    node_passport = bearer(client.get("/governance/passport", headers=researcher).json()["passport"])
    assert client.get(f"{DRS}/objects/{cohort.single.id}", headers=node_passport).status_code == 403
    assert client.get(f"{DRS}/objects/{cohort.multi.id}", headers=node_passport).status_code == 200
