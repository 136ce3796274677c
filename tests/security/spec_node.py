"""A node serving the VCF 4.3 spec example as one dataset, trusting the test issuer.

For attacks on the Beacon's privacy defences through ``genoshare serve`` (rate limits, budgets, exact-count
caps), where the dataset's access level and privacy policy are the things a test sets.
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


def spec_node(
    tmp_path: Path, issuer: VisaIssuer, dataset: str, access_level: str, privacy: Mapping[str, object]
) -> Settings:
    """The node's settings (on SQLite); ``privacy``: the dataset's ``beacon_policy.privacy``, by access level."""
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
    datasets.create(NewDataset(dataset, f"{access_level.title()} data", "Test Institute", access_level, ["GRU"]))
    build_ingestor(node).ingest(dataset, [HTSGET_DATA / "vcf" / "spec-v4.3.vcf.gz"])
    datasets.set_beacon_policy(dataset, {"privacy": dict(privacy)})
    node.close()
    return settings


def registered_spec_node(tmp_path: Path, issuer: VisaIssuer, privacy: Mapping[str, object]) -> Settings:
    """Registered dataset ``reg``; ``privacy``: its ``beacon_policy.privacy.default``."""
    return spec_node(tmp_path, issuer, DATASET, "registered", {"default": dict(privacy)})
