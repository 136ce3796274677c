"""Beacon commands for data stewards: phenotypes, the variant index, the gene table.

Mounted on the main CLI as plain commands (``genoshare ingest-phenotypes``, ``beacon-index``,
``beacon-genes``) by ``register(app)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from genoshare.beacon.genes import load_genes
from genoshare.cli.common import DataDir, IndexEngine, console, fail, open_node, reported
from genoshare.node import build_indexer, build_phenotypes


def ingest_phenotypes(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    files: Annotated[list[Path], typer.Argument(help="individuals.tsv files or Phenopacket v2 .json files.")],
    data_dir: DataDir = Path("node"),
) -> None:
    """Describe a dataset's individuals (sex, age, HPO features, MONDO diseases, biosamples) for the Beacon."""
    node = open_node(data_dir)
    with reported():
        try:
            count = build_phenotypes(node).ingest(dataset, files)
        finally:
            node.close()
    console.print(f"{count} individuals described in dataset [bold]{dataset}[/]")


def beacon_index(
    dataset: Annotated[str, typer.Argument(help="Dataset id.")],
    assembly: Annotated[str | None, typer.Option(help="Assembly if the VCF header names none.")] = None,
    data_dir: DataDir = Path("node"),
    engine: IndexEngine = None,
) -> None:
    """Build the Beacon variant index of every VCF/BCF of a dataset that has none yet."""
    node = open_node(data_dir)
    with reported():
        try:
            built = build_indexer(node, engine or node.settings.ingest_engine).index_dataset(dataset, assembly)
        finally:
            node.close()
    for row in built:
        console.print(f"indexed {row.object_id}: {row.n_rows} alleles, {row.n_samples} samples, {row.assembly_id}")
    if not built:
        console.print("every variant file of the dataset is indexed already")


def beacon_genes(
    gtf: Annotated[Path, typer.Argument(help="GTF or GFF3 (optionally .gz) with gene features.")],
    assembly: Annotated[str, typer.Option(help="Assembly the coordinates are on.")] = "GRCh38",
    data_dir: DataDir = Path("node"),
) -> None:
    """Load the gene table used by Beacon ``geneId`` queries (replaces that assembly's table)."""
    node = open_node(data_dir)
    with reported():
        try:
            count = load_genes(node.database, gtf, assembly)
        except (OSError, UnicodeDecodeError) as error:
            raise fail(f"{gtf}: not a readable GTF/GFF3 file ({error})") from None
        finally:
            node.close()
    console.print(f"{count} genes loaded for {assembly}")


def register(app: typer.Typer) -> None:
    app.command("ingest-phenotypes")(ingest_phenotypes)
    app.command("beacon-index")(beacon_index)
    app.command("beacon-genes")(beacon_genes)
