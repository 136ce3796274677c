"""Helpers shared by tests: paths, the test issuer's names, passports, request headers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS
from genoshare.access.roles import Operator
from genoshare.ingest.deidentify import Pseudonymiser
from genoshare.node import PSEUDONYM_KEY_FILE, Node
from genoshare.settings import Settings, TrustedIssuer, load_settings
from genoshare.store.models import Participant

REPO = Path(__file__).resolve().parent.parent
HTSGET_DATA = REPO / "src" / "genoshare" / "demo" / "data" / "htsget"
SPEC = REPO / "spec"
TEST_ISSUER = "https://issuer.test.genoshare.invalid"
PUBLIC_URL = "http://testserver"
#: Nodes under test count the test issuer's grants as a DAC's (by default only a node's own grants count).
#: The node's operator, as tests that act at its command line (consent links, withdrawals) name them.
OPERATOR = Operator("test-operator")
TEST_PASSPORT_POLICY = {"controlled_access_grants": {"issuers": [TEST_ISSUER], "sources": [TEST_ISSUER]}}


@dataclass
class Passports:
    """Makes passports for a test researcher; ``grant(dataset)`` adds a ControlledAccessGrants visa."""

    issuer: VisaIssuer
    subject: str = "researcher-1"

    def anonymous_researcher(self) -> str:
        return self.issuer.passport(self.subject, [self.researcher_visa()])

    def researcher_visa(self) -> str:
        return self.issuer.visa(self.subject, RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", by="so")

    def grant_visa(self, dataset_id: str, **kwargs: object) -> str:
        return self.issuer.visa(self.subject, CONTROLLED_ACCESS_GRANTS, f"{PUBLIC_URL}/datasets/{dataset_id}", **kwargs)  # type: ignore[arg-type]

    def with_grant(self, dataset_id: str) -> str:
        return self.issuer.passport(self.subject, [self.researcher_visa(), self.grant_visa(dataset_id)])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def pseudonyms_by_source(node: Node, names: Iterable[str], dataset_id: str | None = None) -> dict[str, str]:
    """The pseudonym of each of ``names`` (the institution's own ids) the node holds, found as `consent find` finds
    one: by the keyed hash of the id, which is all the database keeps of it."""
    ids = Pseudonymiser((node.settings.keys_dir / PSEUDONYM_KEY_FILE).read_bytes())
    query = select(Participant)
    if dataset_id is not None:
        query = query.where(Participant.dataset_id == dataset_id)
    with node.database.sessions() as session:
        rows = list(session.scalars(query))
    return {
        name: row.pseudonym for row in rows for name in names if ids.source_key(row.dataset_id, name) == row.source_key
    }


def trusting_settings(folder: Path, issuer: VisaIssuer, **more: Any) -> Settings:
    """A test node's settings (data in ``folder``/node) that trust the test issuer's passports and grants."""
    jwks = folder / "jwks.json"
    issuer.write_jwks(jwks)
    trusted = [TrustedIssuer(issuer=TEST_ISSUER, jwks_file=jwks)]
    return load_settings(
        folder / "node",
        public_url=PUBLIC_URL,
        environment="test",
        trusted_issuers=trusted,
        passports=TEST_PASSPORT_POLICY,
        **more,
    )
