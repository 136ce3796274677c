"""Beacon and phenotype ingest, each built from the parts its constructor names, no ``Node``."""

from __future__ import annotations

from pathlib import Path

import pytest

from genoshare.access.granularity import Granularity
from genoshare.access.privacy import PrivacyGuard
from genoshare.access.privacy_state import SqlPrivacyState
from genoshare.beacon.framework import BY_PATH
from genoshare.beacon.phenotypes import PhenotypeIngest
from genoshare.beacon.request import BeaconRequest
from genoshare.beacon.service import BeaconService
from genoshare.index.published import BeaconIndexer
from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.ingest.metadata import MetadataDeidentifier
from genoshare.ingest.pipeline import Ingestor
from genoshare.store.beacon_tables import BeaconIndividual

from parts import Parts
from support import HTSGET_DATA

VCF = HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"
SECRET = b"s" * 32


@pytest.fixture
def ingested(parts: Parts) -> Parts:
    """The parts, with the spec's three-sample VCF ingested into a public dataset (and its Beacon index)."""
    parts.public_dataset()
    indexer = BeaconIndexer(parts.database, parts.settings.data_dir, parts.objects, parts.keys.secret)
    Ingestor(parts.database, parts.objects, parts.keys, parts.audit, Pseudonymiser(SECRET), indexer).ingest(
        "open", [VCF]
    )
    return parts


def beacon(parts: Parts) -> BeaconService:
    guard = PrivacyGuard(SqlPrivacyState(parts.database), linked_issuers=parts.settings.linked_issuers)
    return BeaconService(parts.settings, parts.database, parts.policy, guard, parts.audit)


def test_beacon_from_its_parts_counts_the_carriers(ingested: Parts) -> None:
    request = BeaconRequest(
        parameters={"referenceName": "20", "start": [14369], "referenceBases": "G", "alternateBases": "A"},
        granularity=Granularity.COUNT,
    )
    answer = beacon(ingested).query(BY_PATH["g_variants"], request, None)
    # rs6054257 (20:14370 G>A), carried by NA00002 and NA00003: one variant.
    assert answer["responseSummary"] == {"exists": True, "numTotalResults": 1}
    assert answer["meta"]["beaconId"] == ingested.settings.node_id


def test_phenotype_ingest_from_its_parts_describes_a_sample(ingested: Parts, tmp_path: Path) -> None:
    table = tmp_path / "individuals.tsv"
    table.write_text(
        "individual_id\tsex\tage\tphenotypic_features\tdiseases\nNA00002\tNCIT:C16576\tP40Y\tHP:0001250\t\n"
    )
    phenotypes = PhenotypeIngest(ingested.database, Pseudonymiser(SECRET), MetadataDeidentifier(SECRET))
    assert phenotypes.ingest("open", [table]) == 1
    with ingested.database.sessions() as session:
        row = session.query(BeaconIndividual).filter_by(dataset_id="open", pseudonym="NA00002").one()
    assert row.sex == "NCIT:C16576"
    assert [feature["featureType"]["id"] for feature in row.phenotypic_features] == ["HP:0001250"]
