"""The per-visa-type policy: safe defaults, configurable in genoshare.toml, and a partial table never loosens it.

(The attacks themselves go through a served node in ``tests/security/test_visa_policy.py``.)
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS, PassportVerifier, TrustedKeys
from genoshare.settings import BONA_FIDE_RESEARCHER, PassportSettings, TrustedIssuer, load_settings

from support import TEST_ISSUER

NODE = "https://node.example.org"
UNI = "https://uni.example.org"


@pytest.fixture
def node_issuer(tmp_path: Path) -> VisaIssuer:
    return VisaIssuer.load_or_create(NODE, tmp_path / "node.jwk")


def verifier(tmp_path: Path, issuers: list[VisaIssuer], settings: PassportSettings) -> PassportVerifier:
    trusted = []
    for n, issuer in enumerate(issuers):
        issuer.write_jwks(tmp_path / f"jwks-{n}.json")
        trusted.append(TrustedIssuer(issuer=issuer.issuer, jwks_file=tmp_path / f"jwks-{n}.json"))
    return PassportVerifier(TrustedKeys(trusted, httpx.Client()), settings, node_issuer=NODE, audiences=[NODE])


def counted(verifier: PassportVerifier, issuer: VisaIssuer, *visas: str) -> list[tuple[str, str]]:
    identity = verifier.verify(issuer.passport("alice", list(visas)))
    return [(visa.type, visa.by) for visa in identity.visas]


def test_the_defaults_count_no_self_assertion_and_only_the_nodes_own_grants(
    tmp_path: Path, issuer: VisaIssuer, node_issuer: VisaIssuer
) -> None:
    check = verifier(tmp_path, [issuer, node_issuer], PassportSettings())
    for by in ("so", "system", "peer"):
        assert counted(check, issuer, issuer.visa("alice", RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by=by))
    for by in ("self", "dac", None):
        assert not counted(check, issuer, issuer.visa("alice", RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by=by))
    grant = f"{NODE}/datasets/d"
    assert not counted(check, issuer, issuer.visa("alice", CONTROLLED_ACCESS_GRANTS, grant))  # another issuer's
    assert counted(check, node_issuer, node_issuer.visa("alice", CONTROLLED_ACCESS_GRANTS, grant))
    refused = check.verify(issuer.passport("alice", [issuer.visa("alice", RESEARCHER_STATUS, "x", by="self")]))
    assert "'self' does not count" in refused.rejected_visas[0]


def test_a_partial_table_in_genoshare_toml_keeps_the_other_defaults(tmp_path: Path) -> None:
    (tmp_path / "genoshare.toml").write_text(
        '[passports.controlled_access_grants]\nissuers = ["https://dac-issuer.example.org"]\n'
        '[passports.researcher_status]\nsources = ["https://uni.example.org"]\n'
    )
    passports = load_settings(tmp_path).passports
    assert passports.controlled_access_grants.by == ["dac"]
    assert passports.controlled_access_grants.sources == []  # not loosened to any source
    assert passports.researcher_status.by == ["so", "system", "peer"]
    assert passports.researcher_status.values == [BONA_FIDE_RESEARCHER]


def test_a_configured_policy_is_applied(tmp_path: Path, issuer: VisaIssuer) -> None:
    settings = PassportSettings.model_validate(
        {
            "researcher_status": {"by": ["so"], "sources": [UNI]},
            "controlled_access_grants": {"by": ["dac", "so"], "issuers": [TEST_ISSUER], "sources": [UNI]},
        }
    )
    check = verifier(tmp_path, [issuer], settings)
    assert counted(check, issuer, issuer.visa("alice", RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by="so", source=UNI))
    assert not counted(check, issuer, issuer.visa("alice", RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by="so"))
    assert not counted(
        check, issuer, issuer.visa("alice", RESEARCHER_STATUS, BONA_FIDE_RESEARCHER, by="peer", source=UNI)
    )
    grant = f"{NODE}/datasets/d"
    assert counted(check, issuer, issuer.visa("alice", CONTROLLED_ACCESS_GRANTS, grant, by="so", source=UNI))
    assert not counted(check, issuer, issuer.visa("alice", CONTROLLED_ACCESS_GRANTS, grant, by="so"))


def test_settings_refuse_what_the_passport_vocabulary_does_not_have(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"researcher_status\.by"):
        load_settings(tmp_path, passports={"researcher_status": {"by": ["anyone"]}})
    with pytest.raises(ValueError, match="leeway_seconds"):
        load_settings(tmp_path, passports={"leeway_seconds": 86400})
