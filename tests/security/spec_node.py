"""A node serving the VCF 4.3 spec example as registered dataset ``reg``, trusting the test issuer.

For attacks on the Beacon's privacy defences through ``genoshare serve`` (rate limits, budgets), where the
dataset's privacy policy is the one thing a test sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from genoshare.access.issuer import VisaIssuer
from genoshare.datasets.service import NewDataset
from genoshare.node import build_datasets, build_ingestor, init_node
from genoshare.settings import Settings, TrustedIssuer, load_settings

from support import HTSGET_DATA, TEST_ISSUER, TEST_PASSPORT_POLICY

DATASET = "reg"


def registered_spec_node(tmp_path: Path, issuer: VisaIssuer, privacy: Mapping[str, object]) -> Settings:
    """The node's settings (on SQLite); ``privacy``: the dataset's ``beacon_policy.privacy.default``."""
    jwks = tmp_path / "jwks.json"
    issuer.write_jwks(jwks)
    settings = load_settings(
        tmp_path / "node",
        database_url="",
        trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=jwks)],
        passports=TEST_PASSPORT_POLICY,
    )
    node = init_node(settings)
    datasets = build_datasets(node)
    datasets.create(NewDataset(DATASET, "Registered data", "Test Institute", "registered", ["GRU"]))
    build_ingestor(node).ingest(DATASET, [HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"])
    datasets.set_beacon_policy(DATASET, {"privacy": {"default": dict(privacy)}})
    node.close()
    return settings
