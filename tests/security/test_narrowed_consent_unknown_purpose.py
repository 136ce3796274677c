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

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import CONTROLLED_ACCESS_GRANTS

from passport_nodes import CONTROLLED, DAC, REGISTERED, build_node, object_id, researcher_visa
from processes import run_cli

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
