"""htsget 1.3 through the node's HTTP API: the compliance suite's requests, errors, POST, Crypt4GH, access.

Tickets are followed as a client would (every url with its headers, data: URIs decoded) and the bytes are
checked: whole files equal the originals (plain, and decrypted with the test key bob.sec when re-encrypted),
regions read back with pysam hold every record pysam's own region fetch returns on the original.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import crypt4gh.lib
import jsonschema
import pysam
import pytest
from crypt4gh import CIPHER_SEGMENT_SIZE, SEGMENT_SIZE, header
from crypt4gh.keys import get_private_key
from fastapi.testclient import TestClient
from htsget_oracle import DEMO_DATASETS, SUFFIX, Dataset, expected, records_of

from genoshare.access.issuer import VisaIssuer
from genoshare.api import data
from genoshare.api.app import create_app
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.demo.setup import demo_files
from genoshare.htsget import bgzf
from genoshare.node import Node, build_ingestor, init_node
from genoshare.settings import TrustedIssuer, load_settings
from genoshare.store import blobs

from support import HTSGET_DATA, PUBLIC_URL, SPEC, TEST_ISSUER, TEST_PASSPORT_POLICY, Passports, bearer

KEYS = HTSGET_DATA / "c4gh" / "keys"
BOB_PUB = base64.b64encode((KEYS / "bob.pub").read_bytes()).decode()
BAM_ID, VCF_ID = "htsnexus_test_NA12878", "spec-v4.3"
# ga4gh/htsget-compliance @ 0e3cb648: what the suite requests and the file it compares the bytes with.
COMPLIANCE = [
    (f"reads/{BAM_ID}", "bam/htsnexus_test_NA12878.bam"),
    (f"reads/{BAM_ID}?format=BAM", "bam/htsnexus_test_NA12878.bam"),
    (f"reads/{BAM_ID}?format=CRAM", "cram/htsnexus_test_NA12878.cram"),
    (f"variants/{VCF_ID}", "vcf/spec-v4.3.vcf.gz"),
    (f"variants/{VCF_ID}?format=VCF", "vcf/spec-v4.3.vcf.gz"),
    (f"variants/{VCF_ID}?format=BCF", "bcf/spec-v4.3.bcf"),
]
DEMO = {ds.name: ds for ds in DEMO_DATASETS}
BY_FORMAT = {
    "BAM": DEMO["demo-bam"],
    "CRAM": DEMO["demo-cram"],
    "VCF": DEMO["demo-vcf-spec"],
    "BCF": DEMO["demo-bcf-spec"],
}


def _schema_validator() -> jsonschema.Draft4Validator:
    root = SPEC / "htsget" / "compliance-schemas"
    response = json.loads((root / "htsgetResponse.json").read_text())
    url = json.loads((root / "htsgetUrl.json").read_text())
    schema = {**response["definitions"]["htsgetResponse"]}
    schema["properties"]["htsget"]["properties"]["urls"]["items"] = url["definitions"]["htsgetUrl"]
    return jsonschema.Draft4Validator(schema)


VALIDATOR = _schema_validator()


@pytest.fixture(scope="module", params=["file", "s3"])
def demo_node(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Node]:
    """The demo htsget files as a public dataset (and a controlled copy of the VCF), on SQLite.

    Objects on local disk, and in an S3 store (``tests/objects_s3.py``): every request runs on both.
    """
    root = tmp_path_factory.mktemp("htsget-node")
    objects: dict[str, Any] = {}
    if request.param == "s3":
        server = request.getfixturevalue("s3")
        objects = {"objects_url": f"s3://{server.new_bucket()}/node", "s3": server.settings()}
    issuer = VisaIssuer.load_or_create(TEST_ISSUER, root / "issuer.jwk.json")
    issuer.write_jwks(root / "jwks.json")
    settings = load_settings(
        root / "node",
        public_url=PUBLIC_URL,
        environment="test",
        trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=root / "jwks.json")],
        passports=TEST_PASSPORT_POLICY,
        **objects,
    )
    node = init_node(settings)
    datasets = DatasetService(node.database)
    for id, level in (("demo-htsget", "public"), ("closed", "controlled")):
        datasets.create(
            NewDataset(id=id, title=id, custodian="C", access_level=level, duo_codes=["GRU"], pseudonymise=False)
        )
    build_ingestor(node).ingest("demo-htsget", demo_files())
    closed = root / "closed-variants.vcf.gz"
    closed.write_bytes((HTSGET_DATA / "vcf" / "sample1-bcbio-cancer.vcf.gz").read_bytes())
    build_ingestor(node).ingest("closed", [closed])
    node.issuer_for_tests = issuer  # type: ignore[attr-defined]
    yield node
    node.close()


@pytest.fixture(scope="module")
def api(demo_node: Node) -> Iterator[TestClient]:
    with TestClient(create_app(demo_node)) as client:
        yield client


def follow(client: TestClient, ticket: dict) -> bytes:
    """What an htsget client assembles from a ticket."""
    out = bytearray()
    for entry in ticket["htsget"]["urls"]:
        url = entry["url"]
        if url.startswith("data:"):
            out += base64.b64decode(url.split(",", 1)[1])
            continue
        assert url.startswith(f"{PUBLIC_URL}/data/")
        response = client.get(url.removeprefix(PUBLIC_URL), headers=entry.get("headers", {}))
        assert response.status_code in (200, 206), response.text
        out += response.content
    return bytes(out)


def decrypt_for_bob(data: bytes) -> bytes:
    secret = get_private_key(str(KEYS / "bob.sec"), lambda: "")
    out = io.BytesIO()
    crypt4gh.lib.decrypt([(0, secret, None)], io.BytesIO(data), out)
    return out.getvalue()


def ticket(client: TestClient, path: str, c4gh: bool = False, **headers: str) -> dict:
    if c4gh:
        path += ("&" if "?" in path else "?") + "encryptionScheme=C4GH"
        headers["Htsget-Context-Public-Key"] = BOB_PUB
    response = client.get(f"/htsget/{path}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/vnd.ga4gh.htsget.v1.3.0+json")
    body = response.json()
    VALIDATOR.validate(body)
    return body


@pytest.mark.parametrize("c4gh", [False, True], ids=["plain", "c4gh"])
@pytest.mark.parametrize(("path", "original"), COMPLIANCE)
def test_compliance_requests_give_the_original_file(api: TestClient, path: str, original: str, c4gh: bool) -> None:
    body = ticket(api, path, c4gh)
    data = follow(api, body)
    if c4gh:
        assert data.startswith(b"crypt4gh")
        data = decrypt_for_bob(data)
    assert data == (HTSGET_DATA / original).read_bytes()
    if not c4gh:
        assert body["htsget"]["md5"] == hashlib.md5(data).hexdigest()


def _check_region(api: TestClient, fmt: str, tmp_path: Path, region: tuple[str, int, int], c4gh: bool) -> None:
    ds: Dataset = BY_FORMAT[fmt]
    contig, start, end = region
    endpoint, id = ("reads", BAM_ID) if ds.fmt.is_reads else ("variants", VCF_ID)
    body = ticket(api, f"{endpoint}/{id}?format={fmt}&referenceName={contig}&start={start}&end={end}", c4gh)
    data = follow(api, body)
    if c4gh:
        data = decrypt_for_bob(data)
    answer = tmp_path / f"answer{SUFFIX[ds.fmt]}"
    answer.write_bytes(data)
    got = Counter(key for key, *_ in records_of(ds, answer))
    assert not expected(ds, contig, start, end) - got, f"records missing for {fmt} {region}"


def _random_regions(fmt: str, count: int) -> list[tuple[str, int, int]]:
    rng = random.Random(fmt)
    ds = BY_FORMAT[fmt]
    contigs = ["11", "20"] if ds.fmt.is_reads else ["20"]
    regions = []
    for _ in range(count):
        contig = rng.choice(contigs)
        lo = {"11": 4_900_000, "20": 0}[contig] if ds.fmt.is_reads else 0
        hi = {"11": 5_200_000, "20": 64_444_167}[contig] if ds.fmt.is_reads else 1_300_000
        start = rng.randrange(lo, hi)
        regions.append((contig, start, start + int(10 ** rng.uniform(0, 5.5))))
    return regions


@pytest.mark.parametrize("c4gh", [False, True], ids=["plain", "c4gh"])
@pytest.mark.parametrize("fmt", ["BAM", "CRAM", "VCF", "BCF"])
def test_random_regions_hold_every_record_pysam_fetches(api: TestClient, tmp_path: Path, fmt: str, c4gh: bool) -> None:
    for region in _random_regions(fmt, 6):
        _check_region(api, fmt, tmp_path, region, c4gh)


@pytest.mark.parametrize("c4gh", [False, True], ids=["plain", "c4gh"])
def test_unplaced_reads_and_header_only(api: TestClient, tmp_path: Path, c4gh: bool) -> None:
    ds = BY_FORMAT["BAM"]
    data = follow(api, ticket(api, f"reads/{BAM_ID}?referenceName=*", c4gh))
    answer = tmp_path / "unplaced.bam"
    answer.write_bytes(decrypt_for_bob(data) if c4gh else data)
    assert Counter(key for key, *_ in records_of(ds, answer)) == expected(ds, "*", None, None)
    body = ticket(api, f"variants/{VCF_ID}?class=header", c4gh)
    # The spec: class=header asks for header data only (no EOF marker, which is body data).
    assert {entry.get("class") for entry in body["htsget"]["urls"]} == {"header"}
    data = follow(api, body)
    answer = tmp_path / "header.vcf.gz"
    answer.write_bytes((decrypt_for_bob(data) if c4gh else data) + bgzf.EOF_MARKER)
    with pysam.VariantFile(str(answer)) as variants:
        assert list(variants) == []
        assert "20" in variants.header.contigs


@pytest.mark.parametrize("c4gh", [False, True], ids=["plain", "c4gh"])
def test_post_unions_regions_and_sends_each_record_once(api: TestClient, tmp_path: Path, c4gh: bool) -> None:
    ds = BY_FORMAT["BAM"]
    regions = [
        {"referenceName": "11", "start": 5_000_000, "end": 5_010_000},
        {"referenceName": "11", "start": 5_005_000, "end": 5_020_000},
        {"referenceName": "20"},
    ]
    headers = {"Htsget-Context-Public-Key": BOB_PUB} if c4gh else {}
    body = {"format": "bam", "regions": regions, "fields": ["QNAME"], "tags": ["RG"], "notags": ["OQ"]}
    if c4gh:
        body["encryptionScheme"] = "C4GH"
    response = api.post(f"/htsget/reads/{BAM_ID}", json=body, headers=headers)
    assert response.status_code == 200, response.text
    VALIDATOR.validate(response.json())
    data = follow(api, response.json())
    answer = tmp_path / "post.bam"
    answer.write_bytes(decrypt_for_bob(data) if c4gh else data)
    got = Counter(key for key, *_ in records_of(ds, answer))
    wanted = expected(ds, "11", 5_000_000, 5_020_000) + expected(ds, "20", None, None)
    assert not wanted - got
    assert max(got.values()) == 1


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        # An id that does not exist is refused as one that needs a passport: no existence oracle.
        ("GET", "reads/nope", None, 401, "InvalidAuthentication"),
        ("GET", f"variants/{BAM_ID}", None, 401, "InvalidAuthentication"),
        ("GET", f"reads/{BAM_ID}?format=VCF", None, 400, "UnsupportedFormat"),
        ("GET", f"reads/{BAM_ID}?format=SAM", None, 400, "UnsupportedFormat"),
        ("GET", f"reads/{BAM_ID}?referenceName=chr99", None, 404, "NotFound"),
        ("GET", f"reads/{BAM_ID}?referenceName=11&start=20&end=10", None, 400, "InvalidRange"),
        ("GET", f"reads/{BAM_ID}?start=10", None, 400, "InvalidInput"),
        ("GET", f"reads/{BAM_ID}?referenceName=*&end=10", None, 400, "InvalidInput"),
        ("GET", f"reads/{BAM_ID}?referenceName=11&start=x", None, 400, "InvalidInput"),
        ("GET", f"reads/{BAM_ID}?referenceName=11&start=4294967296", None, 400, "InvalidInput"),
        ("GET", f"reads/{BAM_ID}?class=body", None, 400, "InvalidInput"),
        ("GET", f"reads/{BAM_ID}?class=header&referenceName=11", None, 400, "InvalidInput"),
        ("GET", f"reads/{BAM_ID}?fields=QNAME,NOPE", None, 400, "InvalidInput"),
        ("GET", f"reads/{BAM_ID}?tags=RG,NM&notags=NM", None, 400, "InvalidInput"),
        ("GET", f"reads/{BAM_ID}?encryptionScheme=c4gh", None, 400, "InvalidInput"),
        ("GET", f"reads/{BAM_ID}?encryptionScheme=pgp", None, 400, "InvalidInput"),
        ("GET", f"variants/{VCF_ID}?referenceName=*", None, 404, "NotFound"),
        ("POST", f"reads/{BAM_ID}?format=BAM", {}, 400, "InvalidInput"),
        ("POST", f"reads/{BAM_ID}", {"regions": []}, 400, "InvalidInput"),
        ("POST", f"reads/{BAM_ID}", {"regions": [{"start": 1}]}, 400, "InvalidInput"),
        ("POST", f"reads/{BAM_ID}", {"regions": [{"referenceName": "11", "start": 5, "end": 5}]}, 400, "InvalidRange"),
        ("POST", f"reads/{BAM_ID}", {"class": "header", "regions": [{"referenceName": "11"}]}, 400, "InvalidInput"),
        ("POST", f"reads/{BAM_ID}", {"bogus": 1}, 400, "InvalidInput"),
        (
            "POST",
            f"reads/{BAM_ID}",
            {"format": "CRAM", "regions": [{"referenceName": "11"}] * 1001},
            413,
            "PayloadTooLarge",
        ),
        ("POST", f"reads/{BAM_ID}", "x" * 300_000, 413, "PayloadTooLarge"),
        ("POST", f"reads/{BAM_ID}", "not json", 400, "InvalidInput"),
        ("GET", "variants/closed-variants", None, 401, "InvalidAuthentication"),
    ],
)
def test_errors_follow_the_spec_table(
    api: TestClient, method: str, path: str, body: object, status: int, error: str
) -> None:
    if isinstance(body, str):
        response = api.post(f"/htsget/{path}", content=body)
    elif method == "POST":
        response = api.post(f"/htsget/{path}", json=body)
    else:
        response = api.get(f"/htsget/{path}")
    assert response.status_code == status, response.text
    assert response.json()["htsget"]["error"] == error
    assert response.json()["htsget"]["message"]


def test_bad_public_key_is_invalid_input(api: TestClient) -> None:
    response = api.get(
        f"/htsget/reads/{BAM_ID}?encryptionScheme=C4GH", headers={"Htsget-Context-Public-Key": "bm90IGEga2V5"}
    )
    assert (response.status_code, response.json()["htsget"]["error"]) == (400, "InvalidInput")


def test_controlled_dataset_needs_a_grant(api: TestClient, demo_node: Node, tmp_path: Path) -> None:
    passports = Passports(demo_node.issuer_for_tests)  # type: ignore[attr-defined]
    denied = api.get("/htsget/variants/closed-variants", headers=bearer(passports.anonymous_researcher()))
    assert (denied.status_code, denied.json()["htsget"]["error"]) == (403, "PermissionDenied")
    body = ticket(api, "variants/closed-variants", **bearer(passports.with_grant("closed")))
    entry = next(e for e in body["htsget"]["urls"] if not e["url"].startswith("data:"))
    # The data URL needs the ticket from the headers, not the passport.
    assert api.get(entry["url"].removeprefix(PUBLIC_URL)).status_code == 401
    data = follow(api, body)
    answer = tmp_path / "closed.vcf.gz"
    answer.write_bytes(data)
    assert data == (HTSGET_DATA / "vcf" / "sample1-bcbio-cancer.vcf.gz").read_bytes()


def test_service_info_for_reads_and_variants(api: TestClient) -> None:
    for endpoint, formats in (("reads", ["BAM", "CRAM"]), ("variants", ["VCF", "BCF"])):
        info = api.get(f"/htsget/{endpoint}/service-info").json()
        assert info["type"] == {"group": "org.ga4gh", "artifact": "htsget", "version": "1.3.0"}
        assert info["htsget"]["datatype"] == endpoint
        assert info["htsget"]["formats"] == formats
        assert info["htsget"]["fieldsParameterEffective"] is False


@pytest.mark.parametrize("in_loop", [True, False], ids=["page-cache-in-loop", "thread"])
def test_reencrypted_data_ranges_are_exact_and_decrypt_to_the_plaintext(
    api: TestClient, monkeypatch: pytest.MonkeyPatch, in_loop: bool
) -> None:
    """Any Range of the re-keyed file (new header, then the stored segments as they are) is that slice of it.

    Cuts inside the new header, across its end, beside segment and piece boundaries and at the file's end;
    pieces of 100 kB, so one range is several pieces cut mid-segment, read in the event loop or (cache miss,
    no RWF_NOWAIT) in a thread.  The header followed by whole segments, fetched by Range, decrypts with the
    reference ``crypt4gh`` and bob's key to exactly those segments' plaintext.
    """
    monkeypatch.setattr(data, "CHUNK", 100_000)
    if not in_loop:
        monkeypatch.setattr(blobs, "_NOWAIT", 0)
    body = ticket(api, f"reads/{BAM_ID}", c4gh=True)
    (entry,) = [e for e in body["htsget"]["urls"] if e["url"].startswith("http")]
    url, auth = entry["url"].removeprefix(PUBLIC_URL), {"Authorization": entry["headers"]["Authorization"]}
    whole = api.get(url, headers=auth)
    assert whole.status_code == 200
    file = whole.content
    reader = io.BytesIO(file)
    list(header.parse(reader))
    header_size, cipher, plain = reader.tell(), CIPHER_SEGMENT_SIZE, SEGMENT_SIZE
    original = (HTSGET_DATA / "bam" / "htsnexus_test_NA12878.bam").read_bytes()

    def get(first: int, last: int) -> bytes:
        response = api.get(url, headers={**auth, "Range": f"bytes={first}-{last - 1}"})
        assert response.status_code == 206, response.text
        assert response.headers["content-range"] == f"bytes {first}-{last - 1}/{len(file)}"
        return response.content

    edges = [0, 1, header_size - 1, header_size, header_size + 1, header_size + cipher - 1, header_size + cipher]
    edges += [header_size + 100_000 - 1, header_size + 2 * cipher + 1, len(file) - cipher, len(file) - 1, len(file)]
    rng = random.Random(5)
    spans = [(a, b) for a in edges for b in edges if a < b] + [
        tuple(sorted(rng.sample(range(len(file) + 1), 2))) for _ in range(20)
    ]
    for first, last in spans:
        assert get(first, last) == file[first:last], (first, last)
    assert api.get(url, headers={**auth, "Range": "bytes=-10"}).content == file[-10:]
    assert api.get(url, headers={**auth, "Range": f"bytes={header_size}-"}).content == file[header_size:]

    segments = -(-len(original) // plain)
    for first, last in ((0, 1), (3, 17), (segments - 2, segments), (segments - 1, segments)):
        sealed = get(0, header_size) + get(header_size + first * cipher, min(header_size + last * cipher, len(file)))
        assert decrypt_for_bob(sealed) == original[first * plain : last * plain], (first, last)


def test_every_ticket_and_data_range_is_audited(api: TestClient, demo_node: Node) -> None:
    body = ticket(api, f"reads/{BAM_ID}?referenceName=11&start=5000000&end=5001000", c4gh=True)
    follow(api, body)
    bam = next(e for e in demo_node.audit.entries() if e.action == "htsget.reads").resource
    actions = [(e.action, e.decision) for e in demo_node.audit.entries(resource_prefix=bam)]
    assert ("htsget.reads", "permit") in actions
    assert ("data.read", "permit") in actions
