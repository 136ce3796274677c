"""A participant narrows their consent to no commercial use (NCU): attacked as the commercial grantee.

Issue 12: after a commercial request listing them under ``excluded_participants`` was approved, their
column was in the VCF served to that grantee and ``/api/individuals/<pseudonym>`` returned their record.
Here, through a real ``genoshare serve``: the shared VCF reaches the commercial grantee without their
column (checked with pysam on the bytes of DRS, htsget whole-file and region tickets, and its Crypt4GH
variant), a BAM and a CRAM they share reach it without their reads (DRS and htsget), Beacon leaves them
out of that caller's individuals and allele answers, their own BAM is refused with a GA4GH error, while a
non-commercial grantee gets everything; lifting the narrowing restores it all at the next request.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

import crypt4gh.lib
import httpx
import pysam

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import RESEARCHER_STATUS
from genoshare.crypt.keys import generate_keypair
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_consent, build_ingestor, build_phenotypes
from genoshare_lab.synth import generate_cohort

from processes import run_cli
from support import OPERATOR, TEST_ISSUER, pseudonyms_by_source

CHAIR = "dac-chair"
DRS = "/ga4gh/drs/v1"


def passport(issuer: VisaIssuer, subject: str) -> dict[str, str]:
    visa = issuer.visa(subject, RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so")
    return {"Authorization": f"Bearer {issuer.passport(subject, [visa])}"}


def bam_of(path: Path, samples: list[str]) -> Path:
    """A sorted BAM (a CRAM embedding its reference if ``path`` ends in .cram), one read group (20 reads) per sample."""
    header = {
        "HD": {"VN": "1.6", "SO": "coordinate"},
        "SQ": [{"SN": "20", "LN": 300_000}],
        "RG": [{"ID": f"rg{number}", "SM": sample} for number, sample in enumerate(samples)],
    }
    cram = path.suffix == ".cram"
    with pysam.AlignmentFile(
        str(path), "wc" if cram else "wb", header=header, format_options=["embed_ref=2"] if cram else None
    ) as out:
        for number in range(20 * len(samples)):
            read = pysam.AlignedSegment(out.header)
            read.query_name = f"read{number}"
            read.reference_id, read.reference_start, read.mapping_quality = 0, 1000 + 100 * number, 60
            read.cigarstring = "50M"
            read.query_sequence = "ACGT" * 12 + "AC"
            read.query_qualities = pysam.qualitystring_to_array("I" * 50)
            read.set_tag("RG", f"rg{number % len(samples)}")
            out.write(read)
    pysam.index(str(path))
    return path


def read_samples(data: bytes, path: Path) -> dict[str, int]:
    """Reads per sample (by the read group's SM) in a downloaded BAM or CRAM (its reference embedded)."""
    path.write_bytes(data)
    with pysam.AlignmentFile(str(path), check_sq=False) as reads:
        sample_of = {group["ID"]: group["SM"] for group in reads.header.to_dict().get("RG", [])}
        counts = dict.fromkeys(sample_of.values(), 0)
        for read in reads.fetch(until_eof=True):
            counts[sample_of[str(read.get_tag("RG"))]] += 1
    return counts


def fetch_ticket(http: httpx.Client, ticket: dict[str, Any]) -> bytes:
    parts = []
    for block in ticket["htsget"]["urls"]:
        if block["url"].startswith("data:"):
            parts.append(base64.b64decode(block["url"].split(",", 1)[1]))
        else:
            response = http.get(block["url"], headers=block.get("headers", {}))
            assert response.status_code in (200, 206), response.text
            parts.append(response.content)
    return b"".join(parts)


def samples_in(data: bytes, path: Path) -> list[str]:
    path.write_bytes(data)
    with pysam.VariantFile(str(path)) as variants:
        names = list(variants.header.samples)
        for record in variants:  # every record must parse with the header it came with
            assert len(record.samples) == len(names)
    return names


class Grantee:
    """A researcher with an approved request, calling the node with the passport it signed."""

    def __init__(self, http: httpx.Client, url: str, headers: dict[str, str]) -> None:
        self.http, self.url = http, url
        signed = http.get(f"{url}/governance/passport", headers=headers).json()["passport"]
        self.headers = {"Authorization": f"Bearer {signed}"}

    def drs_bytes(self, object_id: str) -> tuple[bytes, dict[str, Any]]:
        described = self.http.get(f"{self.url}{DRS}/objects/{object_id}", headers=self.headers)
        assert described.status_code == 200, described.text
        access = self.http.get(f"{self.url}{DRS}/objects/{object_id}/access/https", headers=self.headers)
        assert access.status_code == 200, access.text
        ticket = dict(line.split(": ", 1) for line in access.json()["headers"])
        response = self.http.get(access.json()["url"], headers=ticket)
        assert response.status_code == 200, response.text
        return response.content, described.json()

    def htsget(self, path: str, **params: Any) -> httpx.Response:
        return self.http.get(f"{self.url}/htsget/{path}", params=params, headers=self.headers)

    def beacon(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/{path}", params={"limit": 100, **params}, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()


def ids_in(body: dict[str, Any]) -> set[str]:
    return {record["id"] for rs in body.get("response", {}).get("resultSets", []) for record in rs["results"]}


def carriers_in(body: dict[str, Any]) -> set[str]:
    return {
        case["individualId"]
        for rs in body.get("response", {}).get("resultSets", [])
        for record in rs["results"]
        for case in record.get("caseLevelData", [])
    }


def test_narrowed_consent_is_enforced_on_files_and_beacon(
    node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path
) -> None:
    cohort = generate_cohort(tmp_path / "cohort", 8, 300_000, seed=5, n_variants=300)
    narrowing = cohort.sample_ids[0]
    own_bam = bam_of(tmp_path / "narrowing-person.bam", [narrowing])
    shared_bam = bam_of(tmp_path / "two-people.bam", [narrowing, cohort.sample_ids[1]])
    shared_cram = bam_of(tmp_path / "shared-cram.cram", [narrowing, cohort.sample_ids[2]])
    DatasetService(node.database).create(
        NewDataset(
            id="study", title="Study", custodian="Example Hospital", access_level="controlled", duo_codes=["GRU"]
        )
    )
    DatasetService(node.database).set_committee("study", [f"{CHAIR}@{TEST_ISSUER}"], auto_approve=False)
    published = {
        row.name.split(".")[0]: row
        for row in build_ingestor(node).ingest("study", [cohort.vcf_path, own_bam, shared_bam, shared_cram]).published
    }
    build_phenotypes(node).ingest("study", [cohort.individuals_path])
    vcf, reads, shared_reads = published["cohort"], published["narrowing-person"], published["two-people"]
    cram = published["shared-cram"]
    pseudonyms = pseudonyms_by_source(node, cohort.sample_ids)
    person = pseudonyms[narrowing]
    others = {pseudonyms[sample] for sample in cohort.sample_ids[1:]}
    # An allele the narrowing person carries, and one only they carry (if the simulation made one).
    carried, only_theirs = None, None
    with pysam.VariantFile(str(cohort.vcf_path)) as variants:
        for record in variants:
            holders = {s for s in cohort.sample_ids if any(a for a in record.samples[s]["GT"] if a)}
            if narrowing in holders:
                carried = carried or record
                if holders == {narrowing} and len(record.alts or ()) == 1:
                    only_theirs = only_theirs or record
    assert carried is not None and only_theirs is not None, "the synthetic cohort needs a private allele"

    recipient = generate_keypair(tmp_path / "client-keys", "client")
    env = {"GENOSHARE_DATABASE_URL": node.settings.database_url}
    server = serve(node.settings.data_dir, env)
    url = server.url
    consent = build_consent(node)
    token = {"X-Consent-Token": consent.issue_link(consent.find("study", person), OPERATOR.actor)}
    chair = passport(issuer, CHAIR)
    with httpx.Client(timeout=60) as http:
        narrowed = http.post(f"{url}/consent/narrow", json={"codes": ["NCU"]}, headers=token)
        assert narrowed.json()["restrictions"] == ["NCU"], narrowed.text

        grantees = {}
        for name, commercial in (("pharma", True), ("academic", False)):
            researcher = passport(issuer, name)
            request = http.post(
                f"{url}/governance/requests",
                headers=researcher,
                json={
                    "datasets": ["study"],
                    "purpose": {"primary": "GRU", "commercial": commercial},
                    "project_title": f"{name} project",
                    "institution": f"{name} Ltd",
                },
            ).json()
            excluded = [e["participant"] for e in request["match"]["study"]["excluded_participants"]]
            assert excluded == ([person] if commercial else [])
            approved = http.post(f"{url}/governance/requests/{request['id']}/approve", json={}, headers=chair)
            assert approved.json()["status"] == "approved", approved.text
            grantees[name] = Grantee(http, url, researcher)
        pharma, academic = grantees["pharma"], grantees["academic"]

        def pharma_sees_without_them() -> bytes:
            # DRS: the bytes served lack the column, and the object's checksum describes those bytes.
            data, described = pharma.drs_bytes(vcf.id)
            assert set(samples_in(data, tmp_path / "drs.vcf.gz")) == others
            assert {"type": "sha-256", "checksum": hashlib.sha256(data).hexdigest()} in described["checksums"]
            assert described["size"] == len(data)
            # htsget: the whole file, a region (index of the served file, inline header), and Crypt4GH.
            whole = pharma.htsget(f"variants/{vcf.htsget_id}")
            assert whole.status_code == 200, whole.text
            assert fetch_ticket(http, whole.json()) == data
            region = pharma.htsget(
                f"variants/{vcf.htsget_id}", referenceName="20", start=carried.start, end=carried.stop
            )
            assert set(samples_in(fetch_ticket(http, region.json()), tmp_path / "region.vcf.gz")) == others
            encrypted = http.get(
                f"{url}/htsget/variants/{vcf.htsget_id}",
                params={"encryptionScheme": "C4GH"},
                headers={**pharma.headers, "Htsget-Context-Public-Key": base64.b64encode(recipient.public).decode()},
            )
            assert encrypted.status_code == 200, encrypted.text
            opened = io.BytesIO()
            crypt4gh.lib.decrypt(
                [(0, recipient.secret, None)], io.BytesIO(fetch_ticket(http, encrypted.json())), opened
            )
            assert set(samples_in(opened.getvalue(), tmp_path / "c4gh.vcf.gz")) == others
            # Beacon: the record list, their own record, their biosamples and their alleles leave them out.
            assert ids_in(pharma.beacon("individuals")) == others
            assert pharma.beacon(f"individuals/{person}")["responseSummary"]["exists"] is False
            assert person not in {r.get("individualId") for rs in [pharma.beacon("biosamples")] for r in _results(rs)}
            assert pharma.beacon("individuals", requestedGranularity="count")["responseSummary"][
                "numTotalResults"
            ] == len(others)
            allele = {"referenceName": "20", "start": carried.start, "referenceBases": carried.ref}
            assert person not in carriers_in(pharma.beacon("g_variants", **allele, alternateBases=carried.alts[0]))
            private = {"referenceName": "20", "start": only_theirs.start, "referenceBases": only_theirs.ref}
            answer = pharma.beacon("g_variants", **private, alternateBases=only_theirs.alts[0])
            assert answer["responseSummary"]["exists"] is False, "an allele only they carry is not there for pharma"
            # Their own BAM: refused with a GA4GH error on DRS and htsget, no ticket handed out.
            refused = http.get(f"{url}{DRS}/objects/{reads.id}/access/https", headers=pharma.headers)
            assert refused.status_code == 403 and "consent" in refused.json()["msg"], refused.text
            ticket = pharma.htsget(f"reads/{reads.htsget_id}")
            assert ticket.status_code == 403 and ticket.json()["htsget"]["error"] == "PermissionDenied", ticket.text
            # A BAM shared with someone else: their read group and reads only.
            bam, _ = pharma.drs_bytes(shared_reads.id)
            assert read_samples(bam, tmp_path / "shared.bam") == {pseudonyms[cohort.sample_ids[1]]: 20}
            # A CRAM shared with someone else: re-encoded without their reads, by DRS and htsget alike.
            only_other = {pseudonyms[cohort.sample_ids[2]]: 20}
            assert read_samples(pharma.drs_bytes(cram.id)[0], tmp_path / "shared.cram") == only_other
            sliced = pharma.htsget(f"reads/{cram.htsget_id}", format="CRAM")
            assert sliced.status_code == 200, sliced.text
            assert read_samples(fetch_ticket(http, sliced.json()), tmp_path / "htsget.cram") == only_other
            return data

        def sees_everyone(grantee: Grantee) -> None:
            data, _ = grantee.drs_bytes(vcf.id)
            assert set(samples_in(data, tmp_path / "all.vcf.gz")) == others | {person}
            whole = grantee.htsget(f"variants/{vcf.htsget_id}")
            assert set(samples_in(fetch_ticket(http, whole.json()), tmp_path / "all2.vcf.gz")) == others | {person}
            assert ids_in(grantee.beacon("individuals")) == others | {person}
            assert grantee.beacon(f"individuals/{person}")["responseSummary"]["exists"] is True
            private = {"referenceName": "20", "start": only_theirs.start, "referenceBases": only_theirs.ref}
            answer = grantee.beacon("g_variants", **private, alternateBases=only_theirs.alts[0])
            assert carriers_in(answer) == {person}
            assert grantee.htsget(f"reads/{reads.htsget_id}").status_code == 200
            bam, _ = grantee.drs_bytes(shared_reads.id)
            assert read_samples(bam, tmp_path / "shared-all.bam") == {person: 20, pseudonyms[cohort.sample_ids[1]]: 20}
            both = {person: 20, pseudonyms[cohort.sample_ids[2]]: 20}
            assert read_samples(grantee.drs_bytes(cram.id)[0], tmp_path / "shared-all.cram") == both
            sliced = grantee.htsget(f"reads/{cram.htsget_id}", format="CRAM")
            assert read_samples(fetch_ticket(http, sliced.json()), tmp_path / "htsget-all.cram") == both

        subset = pharma_sees_without_them()
        sees_everyone(academic)
        # Asked again, the same subset is served (cached, not derived anew with other bytes).
        assert pharma.drs_bytes(vcf.id)[0] == subset
        stale = http.get(f"{url}{DRS}/objects/{vcf.id}/access/https", headers=pharma.headers).json()

        widened = http.post(f"{url}/consent/widen", json={"codes": ["NCU"]}, headers=token)
        assert widened.json()["restrictions"] == [], widened.text
        sees_everyone(pharma)
        # A ticket issued for the subset is not used to serve other bytes at its ranges.
        old = http.get(stale["url"], headers=dict(line.split(": ", 1) for line in stale["headers"]))
        assert old.status_code == 403, old.text

        # Narrowing again, by the steward in another process, takes effect at the next request, also for a
        # ticket handed out before it.
        ticket = http.get(f"{url}{DRS}/objects/{vcf.id}/access/https", headers=pharma.headers).json()
        cli = run_cli(
            "consent", "narrow", "study", person, "--code", "NCU", "--data-dir", str(node.settings.data_dir), env=env
        )
        assert cli.returncode == 0, cli.stdout + cli.stderr
        before = http.get(ticket["url"], headers=dict(line.split(": ", 1) for line in ticket["headers"]))
        assert before.status_code == 403, "the full file is not served after the narrowing"
        assert pharma_sees_without_them() == subset
    server.stop()

    # Subsets at rest are as safe as any stored file: Crypt4GH blobs, no plaintext left in staging.
    store = node.settings.data_dir / "objects"
    blobs = [path for path in (store / "blobs").rglob("*") if path.is_file()]
    assert len(blobs) >= 3 and all(path.read_bytes()[:8] == b"crypt4gh" for path in blobs)
    staging = store / ".staging"
    left = [path for path in staging.rglob("*") if path.is_file() and path.stat().st_size > 0]
    assert not [path for path in left if path.read_bytes()[:2] == b"\x1f\x8b"], "plaintext left in staging"


def _results(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [record for rs in body.get("response", {}).get("resultSets", []) for record in rs["results"]]
