"""A privacy budget is the person's, not the token's: a second identity of the same person finds it spent.

Red team (issue 17, must-have 4): an attacker who has spent a member's budget with one identity asks on with
a second one. If the passport says the two are one person -- a LinkedIdentities visa (GA4GH Passport 1.2.1)
naming the first identity, or the same ORCID listed in both -- the second identity must be refused what the
first could no longer get. And linking must not be forgeable: a LinkedIdentities visa signed by a key the node
does not trust links nobody, an issuer links identities at other issuers (an ORCID) only when the operator
trusts it to (``identity_link_issuers``), and identities with different ORCIDs keep their own budgets.

Attacked through ``genoshare serve``; the dataset's policy is a budget of 0.5 and nothing else, so each
answer says whether a budget was spent: one "yes" on a singleton costs 0.46 of its carrier's budget.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
from joserfc.jwk import ECKey
from spec_node import registered_spec_node

from genoshare.access.issuer import VisaIssuer
from genoshare.access.privacy import LINKED_IDENTITIES, PrivacySettings

from processes import run_cli
from support import TEST_ISSUER, Passports, bearer

ORCID = "https://orcid.org"
#: Two alleles only NA00002 carries in the spec VCF, one copy each (0-based starts, as Beacon takes them).
FIRST = {"referenceName": "20", "start": 17329, "referenceBases": "T", "alternateBases": "A"}
SECOND = {"referenceName": "20", "start": 1234566, "referenceBases": "GTC", "alternateBases": "GTCT"}


def _links(*identities: tuple[str, str]) -> str:
    return ";".join(f"{quote(sub, safe='')},{quote(iss, safe='')}" for sub, iss in identities)


def _passport(issuer: VisaIssuer, subject: str, *links: tuple[str, str], signer: VisaIssuer | None = None) -> str:
    """A registered researcher's passport; ``links`` in a LinkedIdentities visa signed by ``signer``."""
    visas = [Passports(issuer, subject).researcher_visa()]
    if links:
        visas.append((signer or issuer).visa(subject, LINKED_IDENTITIES, _links(*links), by="system"))
    return issuer.passport(subject, visas)


def _exists(http: httpx.Client, passport: str, allele: dict[str, object]) -> bool:
    response = http.get("/api/datasets/reg/g_variants", params=allele, headers=bearer(passport))
    assert response.status_code == 200, response.text
    return bool(response.json()["responseSummary"]["exists"])


def test_a_second_identity_of_the_same_person_finds_the_budget_spent(
    tmp_path: Path, issuer: VisaIssuer, serve: Any
) -> None:
    only_a_budget = {**asdict(PrivacySettings()), "budget": 0.5}
    settings = registered_spec_node(tmp_path, issuer, only_a_budget)
    server = serve(settings.data_dir, {"GENOSHARE_DATABASE_URL": ""})
    forger = VisaIssuer(TEST_ISSUER, ECKey.generate_key("P-256", auto_kid=True))
    with httpx.Client(base_url=server.url, timeout=60) as http:
        # The first identity spends NA00002's budget: a "yes", then the next singleton is denied.
        assert _exists(http, _passport(issuer, "attacker-1"), FIRST)
        assert not _exists(http, _passport(issuer, "attacker-1"), SECOND)
        # A second identity whose passport links it to the first is the same person: denied too.
        linked = _passport(issuer, "attacker-2", ("attacker-1", TEST_ISSUER))
        assert not _exists(http, linked, SECOND), "a linked identity got a fresh budget"
        # The control: an identity nobody linked still has its own budget (so the "no" above was the link).
        assert _exists(http, _passport(issuer, "someone-else"), SECOND)
        # A LinkedIdentities visa signed by a key the node does not trust links nobody.
        forged = _passport(issuer, "victim-of-a-forged-link", ("attacker-1", TEST_ISSUER), signer=forger)
        assert _exists(http, forged, SECOND), "a forged LinkedIdentities visa merged two people's budgets"

        # An issuer not trusted to verify identities elsewhere links nobody at another issuer: its visa
        # naming an ORCID (or, from a sloppy broker, a victim's ORCID) merges no budgets.
        unverified = ("0000-0003-1415-9269", ORCID)
        assert _exists(http, _passport(issuer, "claims-orcid-1", unverified), FIRST)
        assert _exists(http, _passport(issuer, "claims-orcid-2", unverified), SECOND), "an unvetted link merged"
    server.stop()

    # The operator trusts the issuer to verify ORCIDs: the same ORCID in two identities' passports is one person.
    vetted = {"GENOSHARE_DATABASE_URL": "", "GENOSHARE_IDENTITY_LINK_ISSUERS": json.dumps([TEST_ISSUER])}
    server = serve(settings.data_dir, vetted)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        orcid = ("0000-0002-1825-0097", ORCID)
        assert _exists(http, _passport(issuer, "orcid-work", orcid), FIRST)
        assert not _exists(http, _passport(issuer, "orcid-home", orcid), SECOND), "the same ORCID got two budgets"
        # Another ORCID is another person.
        assert _exists(http, _passport(issuer, "orcid-other", ("0000-0001-5109-3700", ORCID)), SECOND)

        # The same ORCID iD written another way (its URL, a trailing slash, http, no hyphens) is the same person.
        for n, spelling in enumerate(
            [
                ("https://orcid.org/0000-0002-1825-0097", ORCID),
                ("https://orcid.org/0000-0002-1825-0097/", f"{ORCID}/"),
                ("http://orcid.org/0000-0002-1825-0097", "http://orcid.org"),
                ("0000000218250097", ORCID),
            ]
        ):
            spelled = _passport(issuer, f"orcid-spelled-{n}", spelling)
            assert not _exists(http, spelled, SECOND), f"{spelling} got a budget of its own"
        # An iD whose check digit is wrong (a typo, or a made-up one) links nobody: not even its own twin.
        typo = ("0000-0002-1825-0098", ORCID)
        assert _exists(http, _passport(issuer, "orcid-typo-1", typo), FIRST)
        assert _exists(http, _passport(issuer, "orcid-typo-2", typo), SECOND), "an invalid ORCID linked two people"
        # An e-mail address is the same whatever the case of its domain.
        mail = "https://mail-verifier.example.org"
        assert _exists(http, _passport(issuer, "mail-1", ("alice@Example.ORG", mail)), FIRST)
        assert not _exists(http, _passport(issuer, "mail-2", ("alice@example.org", mail)), SECOND), "split by case"


def test_a_stewards_link_spells_accounts_as_passports_do(tmp_path: Path, issuer: VisaIssuer, serve: Any) -> None:
    """``genoshare privacy link`` names accounts ``subject@issuer``; a subject may be an e-mail address.

    The steward types the account as they read it (here with the domain's case changed): the link must land
    on the budget the passport spends, and a name that could be read two ways, or names nobody, is refused
    with one line and exit code 1, linking nothing.
    """
    settings = registered_spec_node(tmp_path, issuer, {**asdict(PrivacySettings()), "budget": 0.5})
    env = {"GENOSHARE_DATABASE_URL": ""}
    server = serve(settings.data_dir, env)

    def link(*accounts: str) -> subprocess.CompletedProcess[str]:
        return run_cli("privacy", "link", *accounts, "--data-dir", str(settings.data_dir), env=env)

    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert _exists(http, _passport(issuer, "Alice@Uni.Example"), FIRST)  # spends NA00002's budget

        for bad, says in [
            ("Alice@Uni.Example", "subject@issuer"),  # alice at an issuer uni.example, or the address alone?
            ("Alice@Uni.Example@idp", "subject@issuer"),  # the issuer is not a URL
            (f"@{TEST_ISSUER}", "subject@issuer"),
            (f"0000-0002-1825-0098@{ORCID}", "names nobody"),  # the ORCID iD's check character is wrong
        ]:
            done = link(bad, f"bob@{TEST_ISSUER}")
            assert done.returncode == 1, (bad, done.stdout, done.stderr)
            assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr, (bad, done.stderr)
        twice = link(f"Alice@UNI.EXAMPLE@{TEST_ISSUER}", f"Alice@uni.example@{TEST_ISSUER}")
        assert twice.returncode == 1 and "same account" in twice.stderr, twice.stderr
        assert _exists(http, _passport(issuer, "bob"), SECOND), "a refused link merged budgets"

        done = link(f"Alice@UNI.EXAMPLE@{TEST_ISSUER}", f"carol@{TEST_ISSUER}")
        assert done.returncode == 0, done.stderr
        assert f"Alice@uni.example@{TEST_ISSUER}" in done.stdout
        assert not _exists(http, _passport(issuer, "carol"), SECOND), "the link missed the e-mail subject's budget"
