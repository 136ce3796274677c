"""A narrowed consent against access whose purpose the node does not know: registered access, other DACs' grants.

Red team (issue 12 follow-up): a narrowing was enforced only against grants this node signed, whose access
request declared a purpose.  A registered researcher, or a grantee of another committee the node trusts,
declares none, and still got the person who had narrowed to no commercial use: nothing showed their use
fitted.  Through a real ``genoshare serve``, after ``genoshare consent narrow``: both callers get the shared
VCF without the person and Beacon says nothing of the allele only they carry; ``consent widen`` restores both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pysam
from sqlalchemy import select

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import CONTROLLED_ACCESS_GRANTS
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor, init_node
from genoshare.settings import TrustedIssuer, load_settings
from genoshare.store.models import AuditEvent

from passport_nodes import CONTROLLED, DAC, REGISTERED, VCF, build_node, object_id, researcher_visa
from processes import run_cli
from support import TEST_ISSUER

NARROWED = "NA00002"
#: 20:17330 T>A (0-based start), an allele only NA00002 carries in the spec VCF.
THEIR_ALLELE = {"referenceName": "20", "start": 17329, "referenceBases": "T", "alternateBases": "A"}


def served_samples(http: httpx.Client, dataset: str, headers: dict[str, str], path: Path) -> list[str]:
    access = http.get(f"/ga4gh/drs/v1/objects/{object_id(dataset)}/access/https", headers=headers)
    assert access.status_code == 200, access.text
    served = http.get(access.json()["url"], headers=dict(line.split(": ", 1) for line in access.json()["headers"]))
    assert served.status_code == 200, served.text
    path.write_bytes(served.content)
    with pysam.VariantFile(str(path)) as variants:
        return list(variants.header.samples)


def carried(http: httpx.Client, dataset: str, headers: dict[str, str]) -> bool:
    answer = http.get(f"/api/datasets/{dataset}/g_variants", params=THEIR_ALLELE, headers=headers)
    assert answer.status_code == 200, answer.text
    return bool(answer.json()["responseSummary"]["exists"])


def test_access_of_unknown_purpose_leaves_a_narrowed_person_out(issuer: VisaIssuer, serve: Any, tmp_path: Path) -> None:
    data_dir = build_node(tmp_path, issuer)
    for dataset in (REGISTERED, CONTROLLED):
        narrowed = run_cli("consent", "narrow", dataset, NARROWED, "--code", "NCU", "--data-dir", str(data_dir))
        assert narrowed.returncode == 0, narrowed.stdout + narrowed.stderr
    server = serve(data_dir, {})
    registered = issuer.passport("carol", [researcher_visa(issuer, "carol")])
    other_dac_grant = issuer.visa(
        "dave", CONTROLLED_ACCESS_GRANTS, f"{server.url}/datasets/{CONTROLLED}", by="dac", source=DAC
    )
    granted = issuer.passport("dave", [researcher_visa(issuer, "dave"), other_dac_grant])
    callers = {
        REGISTERED: {"Authorization": f"Bearer {registered}"},
        CONTROLLED: {"Authorization": f"Bearer {granted}"},
    }
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for dataset, headers in callers.items():
            assert served_samples(http, dataset, headers, tmp_path / "served.vcf.gz") == ["NA00001", "NA00003"]
            assert not carried(http, dataset, headers), f"{dataset}: Beacon still answers for the narrowed person"

        for dataset in callers:
            widened = run_cli("consent", "widen", dataset, NARROWED, "--code", "NCU", "--data-dir", str(data_dir))
            assert widened.returncode == 0, widened.stdout + widened.stderr
        for dataset, headers in callers.items():
            samples = served_samples(http, dataset, headers, tmp_path / "widened.vcf.gz")
            assert samples == ["NA00001", "NA00002", "NA00003"]
            assert carried(http, dataset, headers)


def test_a_copy_that_cannot_be_made_without_them_is_an_honest_503(
    issuer: VisaIssuer, serve: Any, tmp_path: Path
) -> None:
    """No 500 and no traceback when the subset cannot be derived: a GA4GH error saying why, and an audit entry.

    Here NS is declared with a type the subset cannot recompute it as (the derivation refuses rather than
    publish a count over the person left out).
    """
    odd = tmp_path / "odd.vcf"
    odd.write_text(
        pysam.BGZFile(str(VCF), "rb")
        .read()
        .decode()
        .replace("ID=NS,Number=1,Type=Integer", "ID=NS,Number=1,Type=Float")
    )
    issuer.write_jwks(tmp_path / "issuer-jwks.json")
    settings = load_settings(
        tmp_path / "node",
        environment="test",
        trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=tmp_path / "issuer-jwks.json")],
    )
    node = init_node(settings)
    DatasetService(node.database).create(
        NewDataset(
            id=REGISTERED, title="r", custodian="C", access_level=REGISTERED, duo_codes=["GRU"], pseudonymise=False
        )
    )
    (published,) = build_ingestor(node).ingest(REGISTERED, [odd]).published
    node.close()
    narrowed = run_cli("consent", "narrow", REGISTERED, NARROWED, "--code", "NCU", "--data-dir", str(settings.data_dir))
    assert narrowed.returncode == 0, narrowed.stdout + narrowed.stderr

    server = serve(settings.data_dir, {})
    headers = {"Authorization": f"Bearer {issuer.passport('carol', [researcher_visa(issuer, 'carol')])}"}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        answer = http.get(f"/ga4gh/drs/v1/objects/{published.id}/access/https", headers=headers)
    assert answer.status_code == 503, answer.text
    assert answer.json()["status_code"] == 503
    assert "NS" in answer.json()["msg"] and "\n" not in answer.json()["msg"]
    assert "Traceback" not in server.stop()
    node = Node.open(settings)
    try:
        with node.database.sessions() as session:
            failures = session.scalars(select(AuditEvent).where(AuditEvent.action == "consent.subset")).all()
            assert [(e.resource, e.decision) for e in failures] == [(f"objects/{published.id}", "fail")]
            assert "NS" in failures[0].reason
        assert node.audit.verify().ok
    finally:
        node.close()
