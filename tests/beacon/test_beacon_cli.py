"""The steward's Beacon commands, run through typer's runner on a node of their own."""

from __future__ import annotations

from pathlib import Path

import pyarrow.ipc as ipc
import pyarrow.parquet as pq
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


def test_beacon_index_rebuilds_an_index_an_older_node_wrote_as_parquet(tmp_path: Path) -> None:
    """An older genoshare's variants.parquet is rebuilt as variants.arrow by the command its log line names."""
    cohort = generate_cohort(tmp_path / "cohort", 5, 50_000, seed=7, n_variants=150)
    node = init_node(load_settings(tmp_path / "node"))
    DatasetService(node.database).create(NewDataset("older", "older", "Test", "controlled", ["GRU"]))
    build_ingestor(node).ingest("older", [cohort.vcf_path])
    [arrow] = (tmp_path / "node").glob("beacon/older/*/variants.arrow")
    rows = ipc.open_file(arrow).read_all()
    pq.write_table(rows, arrow.with_name("variants.parquet"), row_group_size=8192)  # as the older node wrote it
    arrow.unlink()
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    data = ["--data-dir", str(tmp_path / "node")]
    result = runner.invoke(app, ["beacon-index", "older", *data])
    assert result.exit_code == 0 and "indexed " in result.output, result.output
    assert not arrow.with_name("variants.parquet").exists()
    assert ipc.open_file(arrow).read_all().equals(rows)
    assert "indexed already" in runner.invoke(app, ["beacon-index", "older", *data]).output
    node.close()
