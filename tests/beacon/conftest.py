"""One real node for the Beacon tests: a synthetic cohort ingested, indexed and described, on SQLite.

Datasets: ``cohort`` (controlled, the msprime cohort with phenotypes), ``opencounts`` (controlled, the
same VCF, anonymous counts rounded to 5 with a minimum of 10), ``packets`` (public, two people from
Phenopackets).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pysam
import pytest
from beacon_world import World
from fastapi.testclient import TestClient
from sqlalchemy import update

from genoshare.access.issuer import VisaIssuer
from genoshare.api.app import create_app
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_ingestor, build_phenotypes, init_node
from genoshare.settings import TrustedIssuer, load_settings
from genoshare.store.models import Dataset
from genoshare_lab.synth import generate_cohort

from support import PUBLIC_URL, TEST_ISSUER, TEST_PASSPORT_POLICY

N_PEOPLE = 40
N_VARIANTS = 3000
LENGTH = 300_000


def _phenopacket(subject: str, sex: str, hpo: str, mondo: str) -> dict[str, object]:
    return {
        "id": f"pp-{subject}",
        "subject": {"id": subject, "sex": sex, "timeAtLastEncounter": {"age": {"iso8601duration": "P40Y"}}},
        "phenotypicFeatures": [{"type": {"id": hpo, "label": "feature"}}],
        "diseases": [{"term": {"id": mondo, "label": "disease"}}],
        "biosamples": [
            {
                "id": f"{subject}-blood",
                "sampledTissue": {"id": "UBERON:0000178", "label": "blood"},
                "materialSample": {"id": "EFO:0009654", "label": "reference sample"},
            }
        ],
        "metaData": {"created": "2024-01-01T00:00:00Z", "createdBy": "test", "phenopacketSchemaVersion": "2.0"},
    }


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, issuer: VisaIssuer) -> Iterator[World]:
    root = tmp_path_factory.mktemp("beacon")
    cohort = generate_cohort(root / "cohort", N_PEOPLE, LENGTH, seed=7, n_variants=N_VARIANTS)
    jwks = root / "jwks.json"
    issuer.write_jwks(jwks)
    settings = load_settings(
        root / "node",
        public_url=PUBLIC_URL,
        environment="test",
        trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=jwks)],
        passports=TEST_PASSPORT_POLICY,
    )
    node = init_node(settings)
    datasets = DatasetService(node.database)
    for dataset_id, level in (("cohort", "controlled"), ("opencounts", "controlled"), ("packets", "public")):
        datasets.create(NewDataset(dataset_id, f"{dataset_id} data", "Test Institute", level, ["GRU"]))
    with node.database.session() as session:
        session.execute(
            update(Dataset)
            .where(Dataset.id == "opencounts")
            .values(beacon_policy={"anonymous_counts": True, "min_count": 10, "count_rounding": 5})
        )
    ingestor = build_ingestor(node)
    for dataset_id in ("cohort", "opencounts"):
        copy = root / f"{dataset_id}.vcf.gz"  # htsget ids are node-wide: one file name per dataset
        shutil.copyfile(cohort.vcf_path, copy)
        ingestor.ingest(dataset_id, [copy])
        build_phenotypes(node).ingest(dataset_id, [cohort.individuals_path])
    packets = root / "packets"
    packets.mkdir()
    small = packets / "two.vcf"
    _two_sample_vcf(cohort.vcf_path, small, ["GS00001", "GS00002"])
    ingestor.ingest("packets", [small])
    files = []
    for subject, sex, hpo, mondo in (
        ("GS00001", "FEMALE", "HP:0001250", "MONDO:0005148"),
        ("GS00002", "MALE", "HP:0002315", "MONDO:0005027"),
    ):
        path = packets / f"{subject}.json"
        path.write_text(json.dumps(_phenopacket(subject, sex, hpo, mondo)))
        files.append(path)
    build_phenotypes(node).ingest("packets", files)
    pseudonyms = {s: ingestor.pseudonymiser.pseudonym("cohort", s) for s in cohort.sample_ids}
    with TestClient(create_app(node)) as client:
        yield World(node, client, cohort.vcf_path, cohort.individuals_path, pseudonyms)
    node.close()


def _two_sample_vcf(source: Path, target: Path, samples: list[str]) -> None:
    with pysam.VariantFile(str(source)) as vcf:
        vcf.subset_samples(samples)
        with pysam.VariantFile(str(target), "w", header=vcf.header) as out:
            for record in vcf:
                out.write(record)
