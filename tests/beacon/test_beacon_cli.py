"""The steward's Beacon commands, run through typer's runner on a node of their own."""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import select
from typer.testing import CliRunner

from genoshare.cli.beacon import register
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_ingestor, init_node
from genoshare.settings import load_settings
from genoshare.store.beacon_tables import BeaconGene, BeaconIndividual, BeaconVariantIndex
from genoshare_lab.synth import generate_cohort

GTF = (
    '20\ttest\tgene\t1001\t5000\t.\t+\t.\tgene_id "ENSG01"; gene_name "GSA";\n'
    "20\ttest\tgene\t9001\t12000\t.\t-\t.\tID=gene:ENSG02;Name=GSB\n"
)


def test_index_phenotypes_and_genes(tmp_path: Path) -> None:
    cohort = generate_cohort(tmp_path / "cohort", 6, 50_000, seed=3, n_variants=200)
    node = init_node(load_settings(tmp_path / "node"))
    DatasetService(node.database).create(NewDataset("small", "small", "Test", "controlled", ["GRU"]))
    build_ingestor(node).ingest("small", [cohort.vcf_path])
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "node")]
    with node.database.sessions() as session:
        built = session.scalars(select(BeaconVariantIndex)).all()
    assert [(b.n_samples, b.assembly_id) for b in built] == [(6, "GRCh38")], "ingest builds the Beacon index"
    assert "indexed already" in runner.invoke(app, ["beacon-index", "small", *data]).output
    result = runner.invoke(app, ["ingest-phenotypes", "small", str(cohort.individuals_path), *data])
    assert result.exit_code == 0, result.output
    (tmp_path / "genes.gtf").write_text(GTF)
    result = runner.invoke(app, ["beacon-genes", str(tmp_path / "genes.gtf"), "--assembly", "hg38", *data])
    assert result.exit_code == 0 and "2 genes" in result.output
    with node.database.sessions() as session:
        genes = {g.symbol: (g.contig, g.start, g.end, g.assembly_id) for g in session.query(BeaconGene)}
        numbers = sorted(p.sample_number for p in session.query(BeaconIndividual))
        sexes = {p.sex for p in session.query(BeaconIndividual)}
    assert genes == {"GSA": ("20", 1000, 5000, "GRCh38"), "GSB": ("20", 9000, 12000, "GRCh38")}
    assert numbers == list(range(6))
    assert "NCIT:C17998" not in sexes  # every individual got its TSV row
    missing = runner.invoke(app, ["ingest-phenotypes", "nope", str(cohort.individuals_path), *data])
    assert missing.exit_code == 1
    node.close()


def test_beacon_index_rebuilds_from_files_a_public_dataset_stores_unencrypted(tmp_path: Path) -> None:
    cohort = generate_cohort(tmp_path / "cohort", 4, 50_000, seed=5, n_variants=100)
    node = init_node(load_settings(tmp_path / "node"))
    DatasetService(node.database).create(NewDataset("open", "open", "Test", "public", ["GRU"], store_plaintext=True))
    build_ingestor(node).ingest("open", [cohort.vcf_path])
    with node.database.session() as session:
        for built in session.scalars(select(BeaconVariantIndex)):
            session.delete(built)  # as if the build after publish had failed
    app = typer.Typer()
    register(app)
    result = CliRunner().invoke(app, ["beacon-index", "open", "--data-dir", str(tmp_path / "node")])
    assert result.exit_code == 0, result.output
    with node.database.sessions() as session:
        rebuilt = session.scalars(select(BeaconVariantIndex)).all()
    assert [b.n_samples for b in rebuilt] == [4]
    node.close()
