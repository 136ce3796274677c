"""The "not consulted" notice of Beacon answers, attacked as an oracle through a real ``genoshare serve``.

Issue 13: an anonymous Beacon "no" for a variant a controlled dataset holds did not say that the dataset was
never asked. Now it does (``info.notConsulted``, ``info.datasets``), and that notice must not become what it
replaces: an anonymous caller comparing the answers for a held and an absent allele, for filters that match
people and filters that match nobody, by GET and by POST, must get the same document apart from the echo of
the request. A caller with a passport is asked everywhere, so the notice follows the caller, not the data.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import pysam

from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor, build_phenotypes
from genoshare_lab.synth import generate_cohort

from support import Passports, bearer


def without_echo(body: dict[str, Any]) -> dict[str, Any]:
    """The answer minus ``receivedRequestSummary``, which repeats the question by design."""
    meta = {key: value for key, value in body["meta"].items() if key != "receivedRequestSummary"}
    return {**body, "meta": meta}


def test_not_consulted_says_nothing_about_the_variant(
    node: Node, issuer: VisaIssuer, serve: Any, tmp_path: Path
) -> None:
    cohort = generate_cohort(tmp_path / "cohort", 8, 300_000, seed=11, n_variants=200)
    datasets = DatasetService(node.database)
    for dataset_id, level in (("study", "controlled"), ("members", "registered")):
        datasets.create(NewDataset(dataset_id, dataset_id, "Example Hospital", level, ["GRU"]))
        copy = tmp_path / f"{dataset_id}.vcf.gz"  # htsget ids are node-wide: one file name per dataset
        shutil.copyfile(cohort.vcf_path, copy)
        build_ingestor(node).ingest(dataset_id, [copy])
        build_phenotypes(node).ingest(dataset_id, [cohort.individuals_path])
    with pysam.VariantFile(str(cohort.vcf_path)) as vcf:
        record = next(r for r in vcf if r.alts and any(1 in (s["GT"] or ()) for s in r.samples.values()))
        held = (record.start, record.ref, record.alts[0])
    absent = (held[0], held[1], next(b for b in "ACGT" if b not in (held[1], held[2])))
    someone = "NCIT:C16576,NCIT:C20197"  # female or male: everybody
    nobody = "NCIT:C17998"  # unknown sex: the synthetic cohort has none

    server = serve(node.settings.data_dir, {"GENOSHARE_DATABASE_URL": node.settings.database_url})
    with httpx.Client(base_url=server.url, timeout=60) as http:

        def anonymous(entry: str, allele: tuple[int, str, str], filters: str, method: str) -> dict[str, Any]:
            start, ref, alt = allele
            variant = {"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt}
            if method == "GET":
                response = http.get(f"/api/{entry}", params={**variant, "filters": filters})
            else:
                query = {"requestParameters": {**variant, "start": [start]}, "filters": filters.split(",")}
                response = http.post(f"/api/{entry}", json={"meta": {"apiVersion": "v2.0.0"}, "query": query})
            assert response.status_code == 200, response.text
            return response.json()

        for entry in ("g_variants", "individuals", "biosamples"):
            answers = [
                without_echo(anonymous(entry, allele, filters, method))
                for allele in (held, absent)
                for filters in (someone, nobody)
                for method in ("GET", "POST")
            ]
            first = answers[0]
            assert first["info"]["notConsulted"]["datasets"] == ["members", "study"], first["info"]
            notes = {note["id"]: note for note in first["info"]["datasets"]}
            assert notes["study"]["consulted"] is False and "ControlledAccessGrants" in notes["study"]["toGetMore"]
            assert notes["members"]["consulted"] is False and "ResearcherStatus" in notes["members"]["toGetMore"]
            assert first["responseSummary"] == {"exists": False}
            for other in answers[1:]:
                assert other == first, f"{entry}: the anonymous answer depends on the variant or the filters"

        researcher = bearer(Passports(issuer, subject="oracle-researcher").anonymous_researcher())
        start, ref, alt = held
        asked = http.get(
            "/api/g_variants",
            params={"referenceName": "20", "start": start, "referenceBases": ref, "alternateBases": alt},
            headers=researcher,
        ).json()
        assert "notConsulted" not in asked["info"]
        assert {note["id"]: note["consulted"] for note in asked["info"]["datasets"]} == {"members": True, "study": True}
