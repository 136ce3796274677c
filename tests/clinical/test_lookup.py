"""Clinical variant lookup: significance from a loaded ClinVar VCF, with source and date, and the node's counts.

The counts are Beacon answers: an anonymous caller is told why no controlled dataset was consulted, a
researcher with a grant gets the carriers and the allele frequency.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clinical_world import ClinicalWorld
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from genoshare.cli.main import app
from genoshare.clinical.variants import parse_allele
from genoshare.errors import InvalidInput

from support import Passports, bearer

CLINVAR = """##fileformat=VCFv4.1
##fileDate=2024-05-01
##source=ClinVar
##reference=GRCh38
##INFO=<ID=CLNSIG,Number=.,Type=String,Description="Clinical significance">
#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO
1\t1500\t12345\tC\tT\t.\t.\tALLELEID=1;CLNDN=Marfan_syndrome|not_provided;CLNREVSTAT=criteria_provided,_single_submitter;CLNSIG=Pathogenic;GENEINFO=GENE1:1
1\t1600\t12346\tG\tA\t.\t.\tCLNDN=not_provided;CLNREVSTAT=no_assertion_criteria_provided;CLNSIG=Benign;GENEINFO=GENE1:1
"""


@pytest.fixture(scope="module")
def loaded(world: ClinicalWorld, tmp_path_factory: pytest.TempPathFactory) -> ClinicalWorld:
    path = tmp_path_factory.mktemp("clinvar") / "clinvar.vcf"
    path.write_text(CLINVAR)
    result = CliRunner().invoke(
        app,
        ["annotations", "load", str(path), "--data-dir", str(world.node.settings.data_dir)],
        env={"GENOSHARE_DATABASE_URL": world.node.settings.database_url},
    )
    assert result.exit_code == 0, result.output
    assert "2 variants loaded from ClinVar of 2024-05-01 (GRCh38)" in result.output
    return world


def test_hgvs_and_vcf_coordinates_give_the_significance_with_its_source_and_date(
    client: TestClient, loaded: ClinicalWorld
) -> None:
    for variant in ("NC_000001.11:g.1500C>T", "chr1-1500-C-T", "1:1500:C:T"):
        answer = client.get("/clinical/variants", params={"variant": variant})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["genes"] == ["GENE1"]
        assert body["clinicalSignificance"] == [
            {
                "significance": "Pathogenic",
                "conditions": ["Marfan syndrome"],
                "reviewStatus": "criteria provided, single submitter",
                "gene": "GENE1",
                "variantId": "12345",
                "source": "ClinVar",
                "sourceDate": "2024-05-01",
            }
        ]


def test_an_anonymous_caller_is_told_why_no_count_is_given(client: TestClient, loaded: ClinicalWorld) -> None:
    body = client.get("/clinical/variants", params={"variant": "1-1500-C-T"}).json()
    rare = next(d for d in body["datasets"] if d["dataset"] == "rare")
    assert rare["consulted"] is False and rare["reason"] and rare["toGetMore"]
    assert "carriers" not in rare
    assert any("no dataset was consulted" in note for note in body["notes"])


def test_a_granted_researcher_gets_the_carriers_and_frequency(
    client: TestClient, loaded: ClinicalWorld, passports: Passports
) -> None:
    headers = bearer(passports.with_grant("rare"))
    body = client.get("/clinical/variants", params={"variant": "1-1500-C-T"}, headers=headers).json()
    rare = next(d for d in body["datasets"] if d["dataset"] == "rare")
    assert rare["consulted"] and rare["exists"] is True and rare["granularity"] == "record"
    assert rare["carriers"] == 1  # only R01
    assert rare["alleleFrequency"] == pytest.approx(1 / 14)  # one copy among the seven who did not withdraw
    research = next(d for d in body["datasets"] if d["dataset"] == "research")
    # No grant there: the Beacon's rules for a researcher apply, randomised response on a rare allele included,
    # and the answer says so (a "no" it gives is a count of 0, which the flag marks as not to be trusted).
    assert research["granularity"] != "record" and research["randomised"] is True
    assert "alleleFrequency" not in research


def test_a_variant_no_source_knows_says_so(client: TestClient, loaded: ClinicalWorld) -> None:
    body = client.get("/clinical/variants", params={"variant": "1-5500-A-G"}).json()
    assert body["clinicalSignificance"] == []
    assert body["genes"] == ["GENE2"]  # from the node's gene table
    assert any("clinical significance is not known" in note for note in body["notes"])


def test_a_variant_on_an_assembly_the_node_does_not_hold_says_so(client: TestClient, loaded: ClinicalWorld) -> None:
    body = client.get("/clinical/variants", params={"variant": "NC_000001.10:g.1500C>T"}).json()
    assert body["variant"]["assembly"] == "GRCh37"
    assert body["datasets"] == [] and body["clinicalSignificance"] == []  # ClinVar was loaded for GRCh38
    assert any("no dataset of this node has variant data on this assembly" in note for note in body["notes"])


def test_the_cli_looks_up_as_the_api_does(client: TestClient, loaded: ClinicalWorld) -> None:
    command = ["clinical", "lookup", "NC_000001.11:g.1500C>T", "--data-dir", str(loaded.node.settings.data_dir)]
    env = {"GENOSHARE_DATABASE_URL": loaded.node.settings.database_url, "COLUMNS": "200"}
    shown = CliRunner().invoke(app, command, env=env)
    assert shown.exit_code == 0, shown.output
    # Read as a person reads the table: however the terminal's width wrapped its lines.
    shown_text = " ".join(shown.output.split())
    assert "Pathogenic (criteria provided, single submitter) for Marfan syndrome ClinVar 2024-05-01" in shown_text
    as_json = CliRunner().invoke(app, [*command, "--json"], env=env)
    api = client.get("/clinical/variants", params={"variant": "NC_000001.11:g.1500C>T"}).json()
    assert json.loads(as_json.output) == api


@pytest.mark.parametrize(
    ("text", "assembly", "contig", "position"),
    [
        ("NC_000001.11:g.12345A>G", "GRCh38", "1", 12345),
        ("NC_000001.10:g.12345A>G", "GRCh37", "1", 12345),
        ("NC_000023.11:g.100C>T", "GRCh38", "X", 100),
        ("chrX-100-C-T", "GRCh38", "X", 100),
        ("NC_012920.1:m.3243A>G", "GRCh38", "MT", 3243),
    ],
)
def test_variants_are_read_into_vcf_terms(text: str, assembly: str, contig: str, position: int) -> None:
    allele = parse_allele(text)
    assert (allele.assembly, allele.contig, allele.position) == (assembly, contig, position)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ga4gh:VA.ZDdoQdURgO2Daj2NxLj4pcDnjiiAsfbO", "cannot be read back"),
        ("NC_000001.11:g.12345del", "reference base"),
        ("NC_000099.1:g.1A>G", "not a GRCh37 or GRCh38"),
        ("BRCA1 c.68_69del", "not a variant"),
        ("1-100-A-A", "is the reference"),
    ],
)
def test_what_cannot_be_read_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        parse_allele(text)


def test_the_api_refuses_an_unreadable_variant_with_a_400(client: TestClient) -> None:
    answer = client.get("/clinical/variants", params={"variant": "NC_000001.11:g.12345dup"})
    assert answer.status_code == 400
    assert "reference" in answer.json()["msg"]


def test_a_file_that_is_not_clinvar_is_refused(world: ClinicalWorld, tmp_path: Path) -> None:
    path = tmp_path / "plain.vcf"
    path.write_text(
        "##fileformat=VCFv4.2\n##reference=GRCh38\n#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n1\t5\t.\tA\tG\t.\t.\t.\n"
    )
    result = CliRunner().invoke(
        app,
        ["annotations", "load", str(path), "--data-dir", str(world.node.settings.data_dir)],
        env={"GENOSHARE_DATABASE_URL": world.node.settings.database_url},
    )
    assert result.exit_code == 1
    assert "no record with CLNSIG" in result.output
