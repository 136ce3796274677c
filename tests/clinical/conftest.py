"""One rare-disease node for the clinical tests (``clinical_world.build_world``), on SQLite, served in-process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clinical_world import STEWARD, ClinicalWorld, build_world, down_peer, matchmaker_settings
from fastapi.testclient import TestClient

from genoshare.access.issuer import VisaIssuer
from genoshare.api.app import create_app
from genoshare.settings import Account, RoleSettings, TrustedIssuer, load_settings

from support import PUBLIC_URL, TEST_ISSUER, TEST_PASSPORT_POLICY


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, issuer: VisaIssuer) -> Iterator[ClinicalWorld]:
    root = tmp_path_factory.mktemp("clinical")
    jwks = root / "jwks.json"
    issuer.write_jwks(jwks)
    settings = load_settings(
        root / "node",
        public_url=PUBLIC_URL,
        environment="test",
        trusted_issuers=[TrustedIssuer(issuer=TEST_ISSUER, jwks_file=jwks)],
        passports=TEST_PASSPORT_POLICY,
        mme=matchmaker_settings([down_peer(root)]),
        roles=RoleSettings(stewards=[Account(subject=STEWARD, issuer=TEST_ISSUER)]),
    )
    built = build_world(root, settings)
    yield built
    built.node.close()


@pytest.fixture(scope="session")
def client(world: ClinicalWorld) -> Iterator[TestClient]:
    with TestClient(create_app(world.node)) as test_client:
        yield test_client
