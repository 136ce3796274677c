"""Builds a controlled dataset with consent codes, a committee, one multi-sample and one single-sample VCF."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pysam import bcftools

from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import Node, build_ingestor
from genoshare.store.models import DataObject

from support import HTSGET_DATA, TEST_ISSUER, pseudonyms_by_source

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
COMMITTEE_MEMBER = f"dac-chair@{TEST_ISSUER}"


@dataclass
class Cohort:
    node: Node
    multi: DataObject
    single: DataObject
    pseudonyms: dict[str, str]


def make_cohort(node: Node, tmp_path: Path, codes: list[str], auto_approve: bool = False) -> Cohort:
    single_vcf = tmp_path / "single.vcf.gz"
    bcftools.view("-s", "NA00002", "-Oz", "-o", str(single_vcf), str(VCF), catch_stdout=False)
    service = DatasetService(node.database)
    service.create(
        NewDataset(
            id="cohort",
            title="Diabetes cohort",
            custodian="Example Hospital",
            access_level="controlled",
            duo_codes=codes,
        )
    )
    service.set_committee("cohort", [COMMITTEE_MEMBER], auto_approve)
    multi = build_ingestor(node).ingest("cohort", [VCF]).published[0]
    single = build_ingestor(node).ingest("cohort", [single_vcf]).published[0]
    pseudonyms = pseudonyms_by_source(node, ["NA00001", "NA00002", "NA00003"])
    return Cohort(node, multi, single, pseudonyms)
