"""HGVS indels and GA4GH VRS ids with a real reference genome: the GRCh38 mitochondrion (``data/SOURCE.txt``).

The expectations come from the sequence itself, read here as plain text, and from identifiers GA4GH
publishes (the refget id of NC_012920.1, vrs-python's own expected allele for MT-10083-A-G), not from the
code under test.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from clinical_world import ClinicalWorld
from typer.testing import CliRunner

from genoshare.beacon.alleles import BeaconAlleles
from genoshare.cli.main import app
from genoshare.clinical.lookup import ClinicalLookup
from genoshare.clinical.reference import ReferenceGenome
from genoshare.clinical.variants import parse_allele
from genoshare.clinical.vrs import vrs_allele
from genoshare.errors import InvalidInput
from genoshare.node import build_annotations, build_beacon

FASTA = Path(__file__).parent / "data" / "chrM.fa"
#: The refget id of NC_012920.1 (GRCh38 chrM), as GA4GH's vrs-python tests give it.
CHRM_REFGET = "SQ.k3grVkjY-hoWcCUojHw6VU6GE3MZ8Sct"


def sequence() -> str:
    return "".join(line.strip() for line in FASTA.read_text().splitlines()[1:]).upper()


def c_tract() -> tuple[int, int]:
    """First and last 1-based position of the poly-C tract before m.310T (the D310 tract)."""
    bases = sequence()
    last = 309
    first = last
    while bases[first - 2] == "C":
        first -= 1
    assert bases[last - 1] == "C" and bases[last] == "T" and bases[first - 2] != "C"
    return first, last


@pytest.fixture(scope="module")
def reference() -> ReferenceGenome:
    return ReferenceGenome(FASTA, "GRCh38")


def test_the_reference_is_the_grch38_mitochondrion(reference: ReferenceGenome) -> None:
    assert reference.length("MT") == 16569
    assert reference.refget("chrM") == reference.refget("MT") == CHRM_REFGET


def test_a_deletion_in_a_homopolymer_becomes_the_left_aligned_vcf_record(reference: ReferenceGenome) -> None:
    first, last = c_tract()
    anchor = sequence()[first - 2]
    # HGVS names the 3'-most C (m.309del); VCF anchors on the base before the tract, whichever C is named.
    for hgvs in (f"NC_012920.1:m.{last}del", f"NC_012920.1:m.{last}delC", f"NC_012920.1:m.{first}del"):
        allele = parse_allele(hgvs, reference=reference)
        assert (allele.contig, allele.position, allele.ref, allele.alt) == ("MT", first - 1, anchor + "C", anchor)


def test_a_duplication_and_an_insertion_become_vcf_insertions(reference: ReferenceGenome) -> None:
    first, last = c_tract()
    anchor = sequence()[first - 2]
    dup = parse_allele(f"NC_012920.1:m.{last}dup", reference=reference)
    assert (dup.position, dup.ref, dup.alt) == (first - 1, anchor, anchor + "C")
    # Inserting a T before m.310T is the duplication of that T: one VCF record, on the last C.
    inserted = parse_allele(f"NC_012920.1:m.{last}_{last + 1}insT", reference=reference)
    duplicated = parse_allele(f"NC_012920.1:m.{last + 1}dup", reference=reference)
    assert inserted == duplicated
    assert (inserted.position, inserted.ref, inserted.alt) == (last, "C", "CT")


def test_a_deletion_insertion_keeps_what_changes(reference: ReferenceGenome) -> None:
    bases = sequence()
    assert bases[3242:3244] == "AG"
    # Both bases change: the record is the two of them.
    both = parse_allele("NC_012920.1:m.3243_3244delinsTT", reference=reference)
    assert (both.position, both.ref, both.alt) == (3243, "AG", "TT")
    # m.3244 stays G: what is left is the MELAS substitution, m.3243A>G.
    assert parse_allele("NC_012920.1:m.3243_3244delinsGG", reference=reference) == parse_allele(
        "NC_012920.1:m.3243A>G", reference=reference
    )


def test_a_reference_allele_that_is_not_the_reference_is_refused(reference: ReferenceGenome) -> None:
    assert parse_allele("NC_012920.1:m.3243A>G", reference=reference).ref == "A"  # MELAS: A at m.3243
    with pytest.raises(InvalidInput, match="has A at MT:3243"):
        parse_allele("NC_012920.1:m.3243G>A", reference=reference)
    with pytest.raises(InvalidInput, match="not GG"):
        parse_allele("NC_012920.1:m.308delGG", reference=reference)
    with pytest.raises(InvalidInput, match="positions must run"):
        parse_allele("NC_012920.1:m.16570del", reference=reference)
    with pytest.raises(InvalidInput, match="not in the configured reference"):
        parse_allele("NC_000001.11:g.12345del", reference=reference)


def test_without_a_reference_an_indel_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidInput, match="no reference genome configured"):
        parse_allele("NC_012920.1:m.309del")


def test_the_vrs_allele_of_a_substitution_is_the_one_ga4gh_publishes(reference: ReferenceGenome) -> None:
    vrs = vrs_allele(parse_allele("MT-10083-A-G"), reference)
    # vrs-python's tests/extras/test_allele_translator.py, mito_output (ClinVar variation 693259).
    assert vrs["location"]["sequenceReference"]["refgetAccession"] == CHRM_REFGET
    assert (vrs["location"]["start"], vrs["location"]["end"]) == (10082, 10083)
    assert vrs["state"] == {"type": "LiteralSequenceExpression", "sequence": "G"}
    assert vrs["id"].startswith("ga4gh:VA.") and len(vrs["id"]) == len("ga4gh:VA.") + 32


def test_one_change_written_three_ways_has_one_vrs_id(reference: ReferenceGenome) -> None:
    first, last = c_tract()
    anchor = sequence()[first - 2]
    ids = {
        vrs_allele(parse_allele(text, reference=reference), reference)["id"]
        for text in (f"NC_012920.1:m.{last}del", f"NC_012920.1:m.{first}del", f"MT-{first - 1}-{anchor}C-{anchor}")
    }
    assert len(ids) == 1
    # VRS describes the deletion over the whole tract: the C run, one C shorter (fully justified).
    vrs = vrs_allele(parse_allele(f"NC_012920.1:m.{last}del", reference=reference), reference)
    assert (vrs["location"]["start"], vrs["location"]["end"]) == (first - 1, last)
    assert vrs["state"]["length"] == last - first and vrs["state"]["repeatSubunitLength"] == 1


def test_the_lookup_answer_carries_the_vrs_id(world: ClinicalWorld, reference: ReferenceGenome) -> None:
    lookup = ClinicalLookup(build_annotations(world.node), BeaconAlleles(build_beacon(world.node)), reference)
    answer = lookup.lookup("NC_012920.1:m.309del", None)
    first, _ = c_tract()
    assert answer["variant"]["position"] == first - 1
    assert answer["variant"]["vrs"]["id"].startswith("ga4gh:VA.")
    assert answer["notes"]  # nothing is known of it here, and that is said


def test_the_cli_reads_an_indel_with_the_configured_reference_and_refuses_it_without(world: ClinicalWorld) -> None:
    command = ["clinical", "lookup", "NC_012920.1:m.309del", "--data-dir", str(world.node.settings.data_dir)]
    env = {"GENOSHARE_DATABASE_URL": world.node.settings.database_url, "COLUMNS": "200"}
    refused = CliRunner().invoke(app, command, env=env)
    assert refused.exit_code == 1
    assert "no reference genome configured" in " ".join(refused.output.split())
    shown = CliRunner().invoke(app, command, env={**env, "GENOSHARE_CLINICAL__REFERENCE_FASTA": str(FASTA)})
    assert shown.exit_code == 0, shown.output
    first, _ = c_tract()
    assert f"MT-{first - 1}-AC-A (GRCh38)" in shown.output
    assert "GA4GH VRS id ga4gh:VA." in shown.output
