"""``GET /api/g_variants/{id}`` with a GA4GH VRS Allele id, through ``genoshare serve``.

A clinician holding a variant as a VRS id (``ga4gh:VA.…``) asks the Beacon with it. The expected id is the
one vrs-python computes for the allele GA4GH publishes in its own tests (``mito_output``: ClinVar variation
693259, NC_012920.1:m.10083A>G), not one computed by the node's code. Checked: the node finds its record
for that id, says an honest "no" for an allele it does not hold when it could compute every variant's id,
and otherwise (no reference configured; variants on a contig the reference lacks) answers with a one-line
error saying what is missing, never "not found" and never an empty answer.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from ga4gh.core import ga4gh_identify
from ga4gh.vrs import models

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor, init_node
from genoshare.settings import load_settings

from processes import Server

FASTA = Path(__file__).parent.parent / "clinical" / "data" / "chrM.fa"

#: vrs-python, tests/extras/test_allele_translator.py: ``mito_output`` (NC_012920.1:m.10083A>G).
MITO_OUTPUT: dict[str, Any] = {
    "location": {
        "start": 10082,
        "end": 10083,
        "sequenceReference": {"refgetAccession": "SQ.k3grVkjY-hoWcCUojHw6VU6GE3MZ8Sct", "type": "SequenceReference"},
        "type": "SequenceLocation",
    },
    "state": {"sequence": "G", "type": "LiteralSequenceExpression"},
    "type": "Allele",
}


#: The same deletion as VRS 2 writes any deletion in a repeat, fully justified: the whole tract (0-based
#: 302-309, seven Cs, read from chrM.fa) becomes six of its repeating unit. From the VRS specification, not
#: from the node's normalisation.
TRACT_DELETION: dict[str, Any] = {
    "location": {**MITO_OUTPUT["location"], "start": 302, "end": 309},
    "state": {"type": "ReferenceLengthExpression", "length": 6, "repeatSubunitLength": 1},
    "type": "Allele",
}


def vrs_id(allele: dict[str, Any]) -> str:
    return str(ga4gh_identify(models.Allele(**allele)))


def vcf(path: Path, contig: str, records: list[tuple[int, str, str]]) -> Path:
    lines = [
        "##fileformat=VCFv4.2",
        "##reference=GRCh38",
        f"##contig=<ID={contig},length=16569,assembly=GRCh38>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT", "S1", "S2"]),
    ]
    lines += [f"{contig}\t{pos}\t.\t{ref}\t{alt}\t.\tPASS\t.\tGT\t0/1\t0/0" for pos, ref, alt in records]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Node:
    root = tmp_path_factory.mktemp("vrs")
    built = init_node(load_settings(root / "node", environment="test"))
    DatasetService(built.database).create(
        NewDataset(id="mito", title="Mito", custodian="C", access_level="public", duo_codes=["NRES"])
    )
    # m.309delC written at the right end of the C tract (m.303-309), where HGVS puts it, not left-aligned.
    records = [(308, "CC", "C"), (3243, "A", "G"), (10083, "A", "G")]
    build_ingestor(built).ingest("mito", [vcf(root / "mito.vcf", "MT", records)])
    built.close()
    return built


def lookup(url: str, entry_id: str) -> httpx.Response:
    return httpx.get(f"{url}/api/g_variants/{entry_id}", params={"requestedGranularity": "record"}, timeout=60)


def test_a_vrs_id_finds_the_variant_and_an_absent_one_is_an_honest_no(node: Node, tmp_path: Path) -> None:
    wanted = vrs_id(MITO_OUTPUT)
    absent = vrs_id({**MITO_OUTPUT, "state": {"sequence": "C", "type": "LiteralSequenceExpression"}})
    server = Server(node.settings.data_dir, {"GENOSHARE_CLINICAL__REFERENCE_FASTA": str(FASTA)})
    try:
        found = lookup(server.url, wanted)
        assert found.status_code == 200, found.text
        assert found.json()["responseSummary"]["exists"] is True, found.text
        (result_set,) = found.json()["response"]["resultSets"]
        assert [r["variantInternalId"] for r in result_set["results"]] == ["MT:10082:A:G"]
        shifted = lookup(server.url, vrs_id(TRACT_DELETION))
        assert shifted.status_code == 200, shifted.text
        (result_set,) = shifted.json()["response"]["resultSets"]
        assert [r["variantInternalId"] for r in result_set["results"]] == ["MT:307:CC:C"]
        missing = lookup(server.url, absent)
        assert missing.status_code == 200, missing.text
        assert missing.json()["responseSummary"]["exists"] is False
        # Another id shape under ga4gh: is not a variant id at all.
        assert lookup(server.url, "ga4gh:SQ.k3grVkjY-hoWcCUojHw6VU6GE3MZ8Sct").status_code == 404

        # A dataset with a variant on a contig the reference lacks: "no" cannot be said for it.
        DatasetService(node.database).create(
            NewDataset(id="nuclear", title="Nuclear", custodian="C", access_level="public", duo_codes=["NRES"])
        )
        build_ingestor(node).ingest("nuclear", [vcf(tmp_path / "nuclear.vcf", "1", [(12345, "C", "T")])])
        unknown = lookup(server.url, absent)
        for _ in range(50):
            if unknown.status_code != 200:
                break
            unknown = lookup(server.url, absent)  # the served catalogue sees the new dataset within a second
        assert unknown.status_code == 501, unknown.text
        message = unknown.json()["error"]["errorMessage"]
        assert "nuclear" in message and "1" in message and "chrM.fa" in message and "\n" not in message
    finally:
        server.stop()


def test_without_a_reference_a_vrs_id_is_an_error_not_a_no(node: Node) -> None:
    server = Server(node.settings.data_dir, {})
    try:
        answer = lookup(server.url, vrs_id(MITO_OUTPUT))
        assert answer.status_code == 501, answer.text
        message = answer.json()["error"]["errorMessage"]
        assert "clinical.reference_fasta" in message and "\n" not in message
        assert "exists" not in answer.json().get("responseSummary", {})
    finally:
        server.stop()
