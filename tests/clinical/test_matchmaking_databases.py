"""Matchmaking and the lookup on both metadata databases: the consent reads, the audit and the annotations."""

from __future__ import annotations

from pathlib import Path

from clinical_world import MARFAN, PEER_TOKEN, build_world, matchmaker_settings
from fastapi.testclient import TestClient

from genoshare.api.app import create_app
from genoshare.node import build_annotations, build_consent
from genoshare.settings import load_settings

MEDIA = "application/vnd.ga4gh.matchmaker.v1.1+json"


def test_match_consent_and_lookup(database_url: str, tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "node", database_url=database_url, mme=matchmaker_settings())
    world = build_world(tmp_path, settings)
    clinvar = tmp_path / "clinvar.vcf"
    clinvar.write_text(
        "##fileformat=VCFv4.1\n##fileDate=2024-05-01\n##reference=GRCh38\n"
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n"
        "1\t1500\t7\tC\tT\t.\t.\tCLNSIG=Likely_pathogenic;CLNDN=Marfan_syndrome;GENEINFO=GENE1:1\n"
    )
    assert build_annotations(world.node).load(clinvar).records == 1
    body = {
        "patient": {"id": "p", "contact": {"name": "n", "href": "mailto:n@x"}, "features": [{"id": t} for t in MARFAN]}
    }
    headers = {"Content-Type": MEDIA, "X-Auth-Token": PEER_TOKEN}
    with TestClient(create_app(world.node)) as client:
        first = client.post("/mme/match", json=body, headers=headers).json()["results"]
        assert first[0]["patient"]["id"] == f"rare/{world.pseudonyms['R01']}"
        consent = build_consent(world.node)
        consent.set_matchmaking(consent.find("rare", world.pseudonyms["R01"]), False, "participant")
        after = client.post("/mme/match", json=body, headers=headers).json()["results"]
        assert all(r["patient"]["id"] != f"rare/{world.pseudonyms['R01']}" for r in after)
        found = client.get("/clinical/variants", params={"variant": "1-1500-C-T"}).json()
        assert found["clinicalSignificance"][0]["significance"] == "Likely pathogenic"
    assert sum(1 for e in world.node.audit.entries() if e.action == "mme.match") == 2
    world.node.close()
