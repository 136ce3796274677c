"""Probing ``genoshare serve`` for which controlled ids exist, without access to them.

Issue 12: DRS ``OPTIONS`` and the bulk endpoints answered 401 for a controlled object that exists and 404
for one that does not, so an anonymous caller learnt which ids exist; ``OPTIONS`` offered ``"None"`` as an
auth type for controlled objects; and Beacon ``/api/individuals/{pseudonym}`` answered ``exists`` to
anonymous callers, telling whether that person is in a controlled dataset.  Here every probe of a real id
and of a made-up one must get the same answer, byte for byte once the id itself is blanked out, from an
anonymous caller and from a registered researcher without a grant, while a grantee still gets the
person's record.  htsget tickets are probed the same way.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import RESEARCHER_STATUS
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor, build_phenotypes
from genoshare.store.models import Participant
from genoshare_lab.synth import generate_cohort

from support import TEST_ISSUER

CHAIR = "dac-chair"
DRS = "/ga4gh/drs/v1"


def passport(issuer: VisaIssuer, subject: str) -> dict[str, str]:
    visa = issuer.visa(subject, RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so")
    return {"Authorization": f"Bearer {issuer.passport(subject, [visa])}"}


def blanked(response: httpx.Response, *ids: str) -> tuple[int, Any]:
    """Status and body with the probed id (and the node's per-request noise) taken out."""
    text = response.text
    for probed in ids:
        text = text.replace(probed, "<id>")
    try:
        body: Any = json.loads(text)
    except ValueError:
        return response.status_code, text
    if isinstance(body, dict) and isinstance(body.get("meta"), dict):
        body["meta"].pop("receivedRequestSummary", None)
    return response.status_code, body


def test_nobody_without_access_learns_which_ids_exist(
    node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path
) -> None:
    cohort = generate_cohort(tmp_path / "cohort", 6, 100_000, seed=4, n_variants=100)
    DatasetService(node.database).create(
        NewDataset(id="secret", title="Secret", custodian="Hospital", access_level="controlled", duo_codes=["GRU"])
    )
    DatasetService(node.database).set_committee("secret", [f"{CHAIR}@{TEST_ISSUER}"], auto_approve=False)
    vcf = build_ingestor(node).ingest("secret", [cohort.vcf_path]).published[0]
    build_phenotypes(node).ingest("secret", [cohort.individuals_path])
    with node.database.sessions() as session:
        person = session.scalars(select(Participant.pseudonym)).first()
    assert person is not None
    made_up_object, made_up_person = "secret.made-up.vcf.gz", person[:-3] + "ZZZ"
    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    url = server.url

    with httpx.Client(timeout=30) as http:
        for caller in ({}, passport(issuer, "registered-researcher")):

            def probe(method: str, path: str, **kwargs: Any) -> httpx.Response:
                return http.request(method, f"{url}{path}", headers=caller, **kwargs)  # noqa: B023

            for real, fake in ((vcf.id, made_up_object), ("secret", "made-up-dataset")):
                for method, path in (
                    ("GET", f"{DRS}/objects/{{}}"),
                    ("OPTIONS", f"{DRS}/objects/{{}}"),
                    ("GET", f"{DRS}/objects/{{}}/access/https"),
                    ("GET", f"{DRS}/objects/{{}}/access/s3"),
                    ("POST", f"{DRS}/objects/{{}}"),
                ):
                    kwargs = {"json": {}} if method == "POST" else {}
                    seen = blanked(probe(method, path.format(real), **kwargs), real)
                    assert seen == blanked(probe(method, path.format(fake), **kwargs), fake), (method, path, seen)
                    assert seen[0] in (200, 401, 403), seen
            # htsget: the id, and the formats it is stored in, are told only to who may read it.
            for path in ("/htsget/variants/{}", "/htsget/variants/{}?format=BCF", "/htsget/reads/{}"):
                seen = blanked(probe("GET", path.format(vcf.htsget_id)), vcf.htsget_id)
                assert seen == blanked(probe("GET", path.format("made-up")), "made-up"), (path, seen)
                assert seen[0] in (401, 403), seen
            # Bulk: the real and the made-up id land in the same group.
            bulk = probe("POST", f"{DRS}/objects", json={"bulk_object_ids": [vcf.id, made_up_object]}).json()
            assert [sorted(group["object_ids"]) for group in bulk["unresolved_drs_objects"]] == [
                sorted([vcf.id, made_up_object])
            ]
            access = probe(
                "POST",
                f"{DRS}/objects/access",
                json={
                    "bulk_object_access_ids": [
                        {"bulk_object_id": vcf.id, "bulk_access_ids": ["https"]},
                        {"bulk_object_id": made_up_object, "bulk_access_ids": ["https"]},
                    ]
                },
            ).json()
            assert len(access["unresolved_drs_objects"]) == 1, access
            described = probe("OPTIONS", f"{DRS}/objects", json={"bulk_object_ids": [vcf.id, made_up_object]}).json()
            assert described["summary"]["resolved"] == 2, described
            for answer in described["resolved_drs_object"]:
                assert answer["supported_types"] == ["PassportAuth", "BearerAuth"], answer
            # Beacon: a lookup of a person by pseudonym says nothing about whether they are in the dataset.
            for path in ("/api/individuals/{}", "/api/individuals/{}/g_variants", "/api/biosamples/{}"):
                seen = blanked(probe("GET", path.format(person)), person)
                assert seen == blanked(probe("GET", path.format(made_up_person)), made_up_person), (path, seen)
                assert seen[0] == 200 and seen[1]["responseSummary"]["exists"] is False, seen

        # A grantee still finds the person, so the probes above compared real answers.
        researcher = passport(issuer, "grantee")
        body = {"datasets": ["secret"], "purpose": {"primary": "GRU"}, "project_title": "p", "institution": "i"}
        request = http.post(f"{url}/governance/requests", headers=researcher, json=body).json()
        http.post(f"{url}/governance/requests/{request['id']}/approve", json={}, headers=passport(issuer, CHAIR))
        signed = http.get(f"{url}/governance/passport", headers=researcher).json()["passport"]
        granted = {"Authorization": f"Bearer {signed}"}
        found = http.get(f"{url}/api/individuals/{person}", headers=granted).json()
        assert found["responseSummary"]["exists"] is True, found
        assert http.get(f"{url}/api/individuals/{made_up_person}", headers=granted).json()["responseSummary"] == {
            "exists": False,
            "numTotalResults": 0,
        }
        assert http.get(f"{url}{DRS}/objects/{vcf.id}", headers=granted).status_code == 200
