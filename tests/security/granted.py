"""A controlled study with one granted researcher, served by a real ``genoshare serve`` (audit and usage tests)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import RESEARCHER_STATUS
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_consent, build_ingestor, build_phenotypes
from genoshare.store.models import DataObject
from genoshare_lab.synth import generate_cohort

from support import OPERATOR, TEST_ISSUER, pseudonyms_by_source

CHAIR = "dac-chair"
DRS = "/ga4gh/drs/v1"


def researcher_passport(issuer: VisaIssuer, subject: str) -> str:
    visa = issuer.visa(subject, RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so")
    return issuer.passport(subject, [visa])


@dataclass
class Study:
    vcf: DataObject
    #: Source sample name -> pseudonym.
    pseudonyms: dict[str, str]
    sample_ids: tuple[str, ...]


def build_study(node: Node, tmp_path: Path, individuals: int = 6) -> Study:
    """A controlled dataset (auto-approved for GRU) with a multi-sample VCF and its individuals."""
    cohort = generate_cohort(tmp_path / "cohort", individuals, 200_000, seed=7, n_variants=200)
    service = DatasetService(node.database)
    service.create(
        NewDataset(
            id="study", title="Study", custodian="Example Hospital", access_level="controlled", duo_codes=["GRU"]
        )
    )
    service.set_committee("study", [f"{CHAIR}@{TEST_ISSUER}"], auto_approve=True)
    vcf = build_ingestor(node).ingest("study", [cohort.vcf_path]).published[0]
    build_phenotypes(node).ingest("study", [cohort.individuals_path])
    pseudonyms = pseudonyms_by_source(node, cohort.sample_ids)
    return Study(vcf, pseudonyms, cohort.sample_ids)


def consent_token(node: Node, pseudonym: str) -> dict[str, str]:
    consent = build_consent(node)
    return {"X-Consent-Token": consent.issue_link(consent.find("study", pseudonym), OPERATOR.actor)}


class Grantee:
    """A researcher whose GRU request the committee approved automatically, with the node-signed passport."""

    def __init__(
        self, http: httpx.Client, url: str, issuer: VisaIssuer, subject: str, *, commercial: bool = False
    ) -> None:
        self.http, self.url = http, url
        self.registered = {"Authorization": f"Bearer {researcher_passport(issuer, subject)}"}
        request = http.post(
            f"{url}/governance/requests",
            headers=self.registered,
            json={
                "datasets": ["study"],
                "purpose": {"primary": "GRU", "commercial": commercial},
                "project_title": "Cohort study",
                "institution": "Example University",
            },
        )
        assert request.status_code in (200, 201), request.text
        if request.json()["status"] != "approved":  # a match that leaves people out goes to the committee
            chair = {"Authorization": f"Bearer {researcher_passport(issuer, CHAIR)}"}
            request = http.post(f"{url}/governance/requests/{request.json()['id']}/approve", json={}, headers=chair)
        assert request.json()["status"] == "approved", request.text
        signed = http.get(f"{url}/governance/passport", headers=self.registered)
        assert signed.status_code == 200, signed.text
        self.headers = {"Authorization": f"Bearer {signed.json()['passport']}"}

    def data_ticket(self, object_id: str) -> tuple[str, dict[str, str]]:
        """A DRS access URL and its ticket header."""
        access = self.http.get(f"{self.url}{DRS}/objects/{object_id}/access/https", headers=self.headers)
        assert access.status_code == 200, access.text
        return access.json()["url"], dict(line.split(": ", 1) for line in access.json()["headers"])

    def beacon(self, path: str, **params: Any) -> dict[str, Any]:
        response = self.http.get(f"{self.url}/api/{path}", params=params, headers=self.headers)
        assert response.status_code == 200, response.text
        return response.json()
