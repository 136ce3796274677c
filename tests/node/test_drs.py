"""DRS 1.5 as the spec says, every read gated by the access decision and written to the audit log."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.errors import Unauthenticated
from genoshare.node import Node, build_ingestor

from drs_schemas import assert_valid, response_schema
from support import HTSGET_DATA, TEST_ISSUER, Passports, bearer

BAM = HTSGET_DATA / "bam" / "htsnexus_test_NA12878.bam"
VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
DRS = "/ga4gh/drs/v1"
SECRET_BAM = "secret.htsnexus_test_NA12878.bam"


@pytest.fixture
def datasets(node: Node, tmp_path: Path) -> Node:
    service = DatasetService(node.database)
    service.create(
        NewDataset(
            id="open", title="Open data", custodian="C", access_level="public", duo_codes=["NRES"], pseudonymise=False
        )
    )
    service.create(
        NewDataset(
            id="secret",
            title="Controlled data",
            custodian="C",
            access_level="controlled",
            duo_codes=["GRU", "NPU"],
            pseudonymise=False,
        )
    )
    service.create(
        NewDataset(id="members", title="Registered data", custodian="C", access_level="registered", duo_codes=["HMB"])
    )
    ingestor = build_ingestor(node)
    ingestor.ingest("open", [VCF])
    ingestor.ingest("secret", [BAM])
    members_vcf = tmp_path / "members.vcf.gz"
    members_vcf.write_bytes(VCF.read_bytes())
    ingestor.ingest("members", [members_vcf])
    return node


def fetch_bytes(client: TestClient, access: dict, range_header: str | None = None) -> bytes:
    headers = dict(line.split(": ", 1) for line in access["headers"])
    if range_header:
        headers["Range"] = range_header
    url = access["url"].removeprefix("http://testserver")
    response = client.get(url, headers=headers)
    assert response.status_code in (200, 206), response.text
    return response.content


def test_service_info_is_a_drs_1_5_service(client: TestClient, datasets: Node) -> None:
    info = client.get(f"{DRS}/service-info").json()
    assert_valid(info, "schemas/DrsService.yaml")
    assert info["type"]["artifact"] == "drs"
    assert info["drs"]["objectCount"] == 3
    assert (
        info["drs"]["totalObjectSize"] == BAM.stat().st_size + 2 * VCF.stat().st_size
        or info["drs"]["totalObjectSize"] > BAM.stat().st_size
    )


def test_public_object_with_checksums_and_self_uri(client: TestClient, datasets: Node) -> None:
    response = client.get(f"{DRS}/objects/open.spec-v4.3.vcf.gz")
    assert response.status_code == 200
    body = response.json()
    assert_valid(body, "schemas/DrsObject.yaml")
    assert body["self_uri"] == "drs://testserver/open.spec-v4.3.vcf.gz"
    checksums = {c["type"]: c["checksum"] for c in body["checksums"]}
    assert checksums["sha-256"] == hashlib.sha256(VCF.read_bytes()).hexdigest()
    assert checksums["md5"] == hashlib.md5(VCF.read_bytes()).hexdigest()
    assert body["size"] == VCF.stat().st_size


@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_public_bytes_equal_the_file_and_ranges_work(client: TestClient, datasets: Node) -> None:
    access = client.get(f"{DRS}/objects/open.spec-v4.3.vcf.gz/access/https").json()
    assert_valid(access, "schemas/AccessURL.yaml")
    assert fetch_bytes(client, access) == VCF.read_bytes()
    assert fetch_bytes(client, access, "bytes=100-199") == VCF.read_bytes()[100:200]
    assert fetch_bytes(client, access, "bytes=-10") == VCF.read_bytes()[-10:]
    assert fetch_bytes(client, access, "bytes=800-") == VCF.read_bytes()[800:]


def test_a_dataset_is_a_bundle_of_its_files(client: TestClient, datasets: Node) -> None:
    body = client.get(f"{DRS}/objects/open").json()
    assert_valid(body, "schemas/DrsObject.yaml")
    assert [item["id"] for item in body["contents"]] == ["open.spec-v4.3.vcf.gz"]
    expected = hashlib.md5(hashlib.md5(VCF.read_bytes()).hexdigest().encode()).hexdigest()
    assert body["checksums"] == [{"checksum": expected, "type": "md5"}]


def test_controlled_object_needs_a_passport(client: TestClient, datasets: Node) -> None:
    response = client.get(f"{DRS}/objects/{SECRET_BAM}")
    assert response.status_code == 401
    assert_valid(response.json(), "schemas/Error.yaml")
    assert response.json()["status_code"] == 401


def test_researcher_without_grant_is_forbidden(client: TestClient, datasets: Node, passports: Passports) -> None:
    response = client.get(f"{DRS}/objects/{SECRET_BAM}", headers=bearer(passports.anonymous_researcher()))
    assert response.status_code == 403
    assert "needs a grant you lack" in response.json()["msg"]


@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_grant_for_the_dataset_opens_it_and_bytes_match(
    client: TestClient, datasets: Node, passports: Passports
) -> None:
    headers = bearer(passports.with_grant("secret"))
    assert client.get(f"{DRS}/objects/{SECRET_BAM}", headers=headers).status_code == 200
    access = client.get(f"{DRS}/objects/{SECRET_BAM}/access/https", headers=headers).json()
    assert fetch_bytes(client, access) == BAM.read_bytes()


def test_passport_in_the_post_body(client: TestClient, datasets: Node, passports: Passports) -> None:
    body = {"passports": [passports.with_grant("secret")]}
    response = client.post(f"{DRS}/objects/{SECRET_BAM}", json=body)
    assert response.status_code == 200
    access = client.post(f"{DRS}/objects/{SECRET_BAM}/access/https", json=body)
    assert access.status_code == 200
    assert fetch_bytes(client, access.json(), "bytes=0-3") == BAM.read_bytes()[:4]


def test_registered_dataset_needs_researcher_status(client: TestClient, datasets: Node, passports: Passports) -> None:
    assert client.get(f"{DRS}/objects/members.members.vcf.gz").status_code == 401
    ok = client.get(f"{DRS}/objects/members.members.vcf.gz", headers=bearer(passports.anonymous_researcher()))
    assert ok.status_code == 200


def test_grant_for_another_dataset_does_not_open_this_one(
    client: TestClient, datasets: Node, passports: Passports
) -> None:
    headers = bearer(passports.with_grant("members"))
    assert client.get(f"{DRS}/objects/{SECRET_BAM}", headers=headers).status_code == 403


def test_expired_passport_is_refused(
    client: TestClient, datasets: Node, issuer: VisaIssuer, passports: Passports
) -> None:
    old = int(time.time()) - 7200
    token = issuer.passport(passports.subject, [passports.grant_visa("secret")], lifetime=600, now=old)
    response = client.get(f"{DRS}/objects/{SECRET_BAM}", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json()["msg"]


def test_expired_visa_is_dropped(client: TestClient, datasets: Node, issuer: VisaIssuer, passports: Passports) -> None:
    stale = passports.grant_visa("secret", lifetime=600, now=int(time.time()) - 7200)
    token = issuer.passport(passports.subject, [passports.researcher_visa(), stale])
    assert client.get(f"{DRS}/objects/{SECRET_BAM}", headers=bearer(token)).status_code == 403


def test_visa_asserted_in_the_future_is_dropped(
    client: TestClient, datasets: Node, issuer: VisaIssuer, passports: Passports
) -> None:
    future = passports.grant_visa("secret", asserted=int(time.time()) + 86400)
    token = issuer.passport(passports.subject, [future])
    assert client.get(f"{DRS}/objects/{SECRET_BAM}", headers=bearer(token)).status_code == 403


def test_wrongly_signed_passport_is_refused(client: TestClient, datasets: Node, tmp_path: Path) -> None:
    """Same issuer name, another key: the signature does not verify against the trusted JWKS."""
    forger = VisaIssuer.load_or_create(TEST_ISSUER, tmp_path / "forger.jwk.json")
    token = forger.passport(
        "mallory", [forger.visa("mallory", "ControlledAccessGrants", "http://testserver/datasets/secret")]
    )
    response = client.get(f"{DRS}/objects/{SECRET_BAM}", headers=bearer(token))
    assert response.status_code == 401
    assert "signature" in response.json()["msg"]


def test_untrusted_issuer_is_refused(client: TestClient, datasets: Node, tmp_path: Path) -> None:
    stranger = VisaIssuer.load_or_create("https://elsewhere.invalid", tmp_path / "other.jwk.json")
    token = stranger.passport("x", [stranger.visa("x", "ControlledAccessGrants", "http://testserver/datasets/secret")])
    response = client.get(f"{DRS}/objects/{SECRET_BAM}", headers=bearer(token))
    assert response.status_code == 401
    assert "does not trust" in response.json()["msg"]


def test_visa_of_another_person_is_dropped(client: TestClient, datasets: Node, issuer: VisaIssuer) -> None:
    borrowed = Passports(issuer, subject="someone-else").grant_visa("secret")
    token = issuer.passport("researcher-1", [borrowed])
    assert client.get(f"{DRS}/objects/{SECRET_BAM}", headers=bearer(token)).status_code == 403


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "Basic dXNlcjpwYXNz"])
def test_malformed_tokens_are_401_not_500(client: TestClient, datasets: Node, token: str) -> None:
    response = client.get(f"{DRS}/objects/{SECRET_BAM}", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert_valid(response.json(), "schemas/Error.yaml")


@pytest.mark.parametrize(
    "object_id",
    ["..%2F..%2Fetc%2Fpasswd", "open.%2E%2E%2Fsecret", "nope", "open.missing.bam", "%00", "open..vcf"],
)
def test_unknown_and_tricky_ids_are_refused_like_controlled_ones(
    client: TestClient, datasets: Node, object_id: str
) -> None:
    """An anonymous caller cannot tell an id that does not exist from one it may not read (issue 12)."""
    response = client.get(f"{DRS}/objects/{object_id}")
    # Ids with an encoded slash match no route at all.
    assert response.status_code == (404 if "%2F" in object_id else 401)
    assert_valid(response.json(), "schemas/Error.yaml")


def test_unknown_access_id_is_404(client: TestClient, datasets: Node) -> None:
    assert client.get(f"{DRS}/objects/open.spec-v4.3.vcf.gz/access/s3").status_code == 404


def test_options_lists_the_trusted_passport_issuers(client: TestClient, datasets: Node) -> None:
    body = client.options(f"{DRS}/objects/{SECRET_BAM}").json()
    assert_valid(body, "schemas/Authorizations.yaml")
    assert body["passport_auth_issuers"] == [TEST_ISSUER]
    assert "PassportAuth" in body["supported_types"]


def test_bulk_objects_resolve_what_the_caller_may_see(client: TestClient, datasets: Node, passports: Passports) -> None:
    body = {
        "bulk_object_ids": ["open.spec-v4.3.vcf.gz", SECRET_BAM, "missing"],
        "passports": [passports.anonymous_researcher()],
    }
    response = client.post(f"{DRS}/objects", json=body).json()
    assert_valid(response, *response_schema("200OkDrsObjects"))
    assert response["summary"] == {"requested": 3, "resolved": 1, "unresolved": 2}
    codes = {entry["error_code"]: entry["object_ids"] for entry in response["unresolved_drs_objects"]}
    assert codes == {403: [SECRET_BAM, "missing"]}


def test_bulk_access_urls(client: TestClient, datasets: Node, passports: Passports) -> None:
    body = {
        "bulk_object_access_ids": [{"bulk_object_id": SECRET_BAM, "bulk_access_ids": ["https"]}],
        "passports": [passports.with_grant("secret")],
    }
    response = client.post(f"{DRS}/objects/access", json=body).json()
    assert_valid(response, *response_schema("200OkAccesses"))
    assert response["summary"]["resolved"] == 1
    assert fetch_bytes(client, response["resolved_drs_object_access_urls"][0], "bytes=0-99") == BAM.read_bytes()[:100]


def test_too_many_ids_is_413(client: TestClient, datasets: Node) -> None:
    ids = [f"x{i}" for i in range(datasets.settings.max_bulk_request_length + 1)]
    response = client.post(f"{DRS}/objects", json={"bulk_object_ids": ids})
    assert response.status_code == 413
    assert_valid(response.json(), "schemas/Error.yaml")


def test_malformed_body_is_400(client: TestClient, datasets: Node) -> None:
    response = client.post(f"{DRS}/objects", json={"bulk_object_ids": "not-a-list"})
    assert response.status_code == 400
    assert_valid(response.json(), "schemas/Error.yaml")


def test_data_url_needs_the_ticket_for_that_object(client: TestClient, datasets: Node) -> None:
    access = client.get(f"{DRS}/objects/open.spec-v4.3.vcf.gz/access/https").json()
    headers = dict(line.split(": ", 1) for line in access["headers"])
    assert client.get("/data/open.spec-v4.3.vcf.gz").status_code == 401
    assert client.get(f"/data/{SECRET_BAM}", headers=headers).status_code == 401
    tampered = {"Authorization": headers["Authorization"][:-4] + "AAAA"}
    assert client.get("/data/open.spec-v4.3.vcf.gz", headers=tampered).status_code == 401


@pytest.mark.parametrize(
    ("sent", "status"),
    [
        ("bytes=5000-", 416),  # unsatisfiable
        ("bytes=10-5", 400),  # malformed: rejected, as RFC 9110 14.2 allows
        ("bytes 0-1", 400),
        ("items=0-1", 200),  # a unit the server does not know MUST be ignored
        ("bytes=0-1,5-6", 200),  # several ranges: the whole object, as RFC 9110 14.2 allows
    ],
)
def test_ranges_are_answered_as_rfc_9110_says(client: TestClient, datasets: Node, sent: str, status: int) -> None:
    access = client.get(f"{DRS}/objects/open.spec-v4.3.vcf.gz/access/https").json()
    headers = dict(line.split(": ", 1) for line in access["headers"])
    whole = client.get("/data/open.spec-v4.3.vcf.gz", headers=headers)
    response = client.get("/data/open.spec-v4.3.vcf.gz", headers={**headers, "Range": sent})
    assert response.status_code == status
    if status == 416:
        assert response.headers["content-range"] == f"bytes */{len(whole.content)}"
    if status == 200:
        assert response.content == whole.content and "content-range" not in response.headers


@pytest.mark.parametrize("object_store", ["file", "s3"], indirect=True)
def test_decisions_and_bytes_served_are_audited(client: TestClient, datasets: Node, passports: Passports) -> None:
    headers = bearer(passports.with_grant("secret"))
    client.get(f"{DRS}/objects/{SECRET_BAM}")
    access = client.get(f"{DRS}/objects/{SECRET_BAM}/access/https", headers=headers).json()
    fetch_bytes(client, access, "bytes=10-19")
    events = [e for e in datasets.audit.entries(resource_prefix=f"objects/{SECRET_BAM}")]
    summary = [(e.actor, e.action, e.decision) for e in events]
    actor = f"researcher-1@{TEST_ISSUER}"
    assert summary == [
        ("steward", "ingest", "publish"),
        ("anonymous", "drs.get", "deny"),
        (actor, "drs.access", "permit"),
        (actor, "data.read", "permit"),
    ]
    assert events[-1].details["start"] == 10 and events[-1].details["end"] == 20
    assert datasets.audit.verify().ok
    assert all("eyJ" not in str(e.details) + e.reason + e.actor for e in events), "tokens never reach the log"


def test_a_cached_passport_still_expires(datasets: Node, issuer: VisaIssuer, passports: Passports) -> None:
    """Verification is cached for speed, but expiry is checked on every use."""
    now = int(time.time())
    token = issuer.passport(passports.subject, [passports.grant_visa("secret")], lifetime=600, now=now)
    verifier = datasets.passports
    assert verifier.verify(token, now=now).visas
    assert verifier.verify(token, now=now + 300).visas, "still valid, answered from the cache"
    with pytest.raises(Unauthenticated, match="expired"):
        verifier.verify(token, now=now + 3600)
