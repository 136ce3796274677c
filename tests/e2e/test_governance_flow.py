"""The whole governance story against a running node (uvicorn), as issue 7 tells it:

request -> DUO match -> committee approves -> node-signed visa -> htsget and DRS downloads work ->
participant withdraws -> Beacon count drops and their file is blocked -> grant revoked -> downloads
refused; the usage report lists each step and the audit chain verifies.
"""

from __future__ import annotations

import base64
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pysam
from pysam import bcftools

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import RESEARCHER_STATUS
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_consent, build_ingestor, build_phenotypes
from genoshare_lab.synth import generate_cohort

from support import OPERATOR, TEST_ISSUER

CHAIR = "dac-chair"


def passport(issuer: VisaIssuer, subject: str) -> dict[str, str]:
    visa = issuer.visa(subject, RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so")
    return {"Authorization": f"Bearer {issuer.passport(subject, [visa])}"}


def fetch_ticket(http: httpx.Client, ticket: dict) -> bytes:
    parts = []
    for block in ticket["htsget"]["urls"]:
        if block["url"].startswith("data:"):
            parts.append(base64.b64decode(block["url"].split(",", 1)[1]))
        else:
            response = http.get(block["url"], headers=block.get("headers", {}))
            response.raise_for_status()
            parts.append(response.content)
    return b"".join(parts)


def individuals(http: httpx.Client, url: str, headers: dict[str, str]) -> int:
    body = http.get(f"{url}/api/individuals", params={"requestedGranularity": "count"}, headers=headers).json()
    return int(body["responseSummary"]["numTotalResults"])


def test_request_approve_download_withdraw_revoke(node: Node, issuer: VisaIssuer, serve, tmp_path: Path) -> None:
    cohort = generate_cohort(tmp_path / "cohort", 12, 200_000, seed=11, n_variants=400)
    single = tmp_path / "one-sample.vcf.gz"
    bcftools.view("-s", cohort.sample_ids[0], "-Oz", "-o", str(single), str(cohort.vcf_path), catch_stdout=False)
    DatasetService(node.database).create(
        NewDataset(
            id="study",
            title="Diabetes study",
            custodian="Example Hospital",
            access_level="controlled",
            duo_codes=["DS:MONDO:0005015", "NPU"],
        )
    )
    DatasetService(node.database).set_committee("study", [f"{CHAIR}@{TEST_ISSUER}"], auto_approve=False)
    published = {row.name: row for row in build_ingestor(node).ingest("study", [cohort.vcf_path, single]).published}
    build_phenotypes(node).ingest("study", [cohort.individuals_path])
    multi, one = published["cohort.vcf.gz"], next(r for n, r in published.items() if n != "cohort.vcf.gz")
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    url = server.url
    researcher, chair = passport(issuer, "alice"), passport(issuer, CHAIR)

    with httpx.Client(timeout=30) as http:
        # 1. request, matched against DUO
        request = http.post(
            f"{url}/governance/requests",
            headers=researcher,
            json={
                "datasets": ["study"],
                "purpose": {"primary": "DS", "diseases": ["MONDO:0005148"]},
                "project_title": "T2D genetics",
                "institution": "Example University",
            },
        ).json()
        assert request["status"] == "pending" and request["match"]["study"]["outcome"] == "PERMIT"
        # 2. the committee approves; the node signs a visa
        assert (
            http.post(f"{url}/governance/requests/{request['id']}/approve", json={}, headers=chair).json()["status"]
            == "approved"
        )
        granted = {
            "Authorization": f"Bearer {http.get(f'{url}/governance/passport', headers=researcher).json()['passport']}"
        }
        # 3. htsget and DRS downloads work
        ticket = http.get(f"{url}/htsget/variants/{multi.htsget_id}", headers=granted)
        assert ticket.status_code == 200, ticket.text
        downloaded = tmp_path / "downloaded.vcf.gz"
        downloaded.write_bytes(fetch_ticket(http, ticket.json()))
        with pysam.VariantFile(str(downloaded)) as variants:
            assert len(variants.header.samples) == 12 and sum(1 for _ in variants) > 0
        access = http.get(f"{url}/ga4gh/drs/v1/objects/{one.id}/access/https", headers=granted).json()
        one_ticket = dict(line.split(": ", 1) for line in access["headers"])
        assert http.get(access["url"], headers=one_ticket).status_code == 200
        before = individuals(http, url, granted)
        assert before == 12

        # 4. the participant in the single-sample file withdraws
        consent = build_consent(node)
        person = next(
            p
            for p in (consent.find("study", r.participant) for r in consent.records("study"))
            if one.id in consent.record(p).files
        )
        token = consent.issue_link(person, OPERATOR.actor)
        withdrawal = http.post(f"{url}/consent/withdraw", headers={"X-Consent-Token": token}).json()
        assert withdrawal["unavailable"] == [one.id]
        after = individuals(http, url, granted)
        file_status = http.get(access["url"], headers=one_ticket).status_code
        assert (after, file_status) == (11, 403), "at the next requests the Beacon count drops and the file is blocked"

        # 5. the shared file is re-derived without them and served again
        deadline = time.monotonic() + 60
        while http.get(f"{url}/htsget/variants/{multi.htsget_id}", headers=granted).status_code != 200:
            assert time.monotonic() < deadline, "re-derivation did not finish within 60 s"
            time.sleep(0.2)
        rederived = tmp_path / "rederived.vcf.gz"
        rederived.write_bytes(
            fetch_ticket(http, http.get(f"{url}/htsget/variants/{multi.htsget_id}", headers=granted).json())
        )
        with pysam.VariantFile(str(rederived)) as variants:
            assert person.pseudonym not in variants.header.samples and len(variants.header.samples) == 11

        # 6. the committee revokes; every download is refused from the next request on
        assert (
            http.post(
                f"{url}/governance/requests/{request['id']}/revoke", json={"reason": "end of project"}, headers=chair
            ).json()["status"]
            == "revoked"
        )
        assert http.get(f"{url}/htsget/variants/{multi.htsget_id}", headers=granted).status_code == 403
        assert http.get(f"{url}/ga4gh/drs/v1/objects/{multi.id}", headers=granted).status_code == 403

        # 7. who used the data, and the chain of it all
        usage = http.get(f"{url}/governance/datasets/study/usage", headers=chair).json()
        assert [u["projects"] for u in usage] == [["T2D genetics (Example University)"]]
    server.stop()
    actions = [event.action for event in node.audit.entries(resource_prefix="")]
    for step in (
        "access.request",
        "access.approve",
        "htsget.variants",
        "data.read",
        "consent.withdraw",
        "consent.rederive",
        "access.revoke",
    ):
        assert step in actions, f"{step} missing from the audit log"
    verify = subprocess.run(
        [sys.executable, "-m", "genoshare", "audit", "verify", "--data-dir", str(node.settings.data_dir)],
        capture_output=True,
        text=True,
        check=False,
        env={"GENOSHARE_DATABASE_URL": node.settings.database_url, "PATH": "/usr/bin:/bin"},
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
