from __future__ import annotations

from pathlib import Path

from genoshare.index.genes import GeneTable

# Made-up loci: only the parsing is under test.
GTF = (
    "#!genome-build test\n"
    '20\ttest\tgene\t1001\t2000\t.\t+\t.\tgene_id "ENSGTEST0001.3"; gene_name "ALPHA"; gene_type "x";\n'
    '20\ttest\ttranscript\t1001\t1500\t.\t+\t.\tgene_id "ENSGTEST0001.3"; gene_name "ALPHA";\n'
    'X\ttest\tgene\t10\t20\t.\t-\t.\tgene_id "ENSGTEST0002"; gene_name "PAR1";\n'
    'Y\ttest\tgene\t30\t40\t.\t-\t.\tgene_id "ENSGTEST0003"; gene_name "PAR1";\n'
)
GFF3 = (
    "##gff-version 3\n"
    "chr20\ttest\tgene\t5\t9\t.\t+\t.\tID=gene:ENSGTEST0009;Name=BETA;biotype=protein_coding\n"
    "chr20\ttest\tmRNA\t5\t9\t.\t+\t.\tID=transcript:T1;Parent=gene:ENSGTEST0009\n"
)


def test_gtf(tmp_path: Path) -> None:
    path = tmp_path / "genes.gtf"
    path.write_text(GTF)
    table = GeneTable.from_annotation(path)
    (alpha,) = table.lookup("alpha")
    assert (alpha.contig, alpha.start, alpha.end, alpha.strand) == ("20", 1000, 2000, "+")
    assert table.lookup("ENSGTEST0001") == [alpha] == table.lookup("ENSGTEST0001.3")
    assert {g.contig for g in table.lookup("PAR1")} == {"X", "Y"}
    assert table.lookup("NOPE") == []


def test_gff3(tmp_path: Path) -> None:
    path = tmp_path / "genes.gff3"
    path.write_text(GFF3)
    (beta,) = GeneTable.from_annotation(path).lookup("BETA")
    assert (beta.gene_id, beta.contig, beta.start, beta.end) == ("ENSGTEST0009", "chr20", 4, 9)
