"""Prepares a demo node in one call: init, datasets, ingest, and a researcher passport to try it with.

The demo issuer stands in for an external identity provider (an ELIXIR AAI or a Passport broker): it
signs real JWTs with its own key, and the demo node trusts its JWKS file.  Its key never leaves the
demo data directory; do not add it to a real node's trusted issuers.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from rich.console import Console

from genoshare.access.issuer import VisaIssuer
from genoshare.access.policy import CONTROLLED_ACCESS_GRANTS, RESEARCHER_STATUS
from genoshare.datasets.service import NewDataset
from genoshare.demo.broker import ACCOUNTS, CLIENT_ID
from genoshare.node import build_consent, build_datasets, build_ingestor, build_phenotypes, init_node, write_config_file
from genoshare.settings import Settings, TrustedIssuer, load_settings

DEMO_ISSUER = "https://demo-issuer.genoshare.invalid"
DEMO_RESEARCHER = "demo-researcher"
#: The demo cohort's access committee: one member, whose passport the demo also writes out.
DEMO_COMMITTEE = "demo-dac"
PUBLIC_DATASET = "demo-htsget"
COHORT_DATASET = "demo-cohort"
#: One day: long enough to play with the demo, short enough not to be a standing credential.
PASSPORT_LIFETIME = 24 * 3600


def demo_files() -> list[Path]:
    """The htsget test files (see data/htsget/SOURCE.txt): htsnexus_test_NA12878 and spec-v4.3 pairs."""
    root = Path(str(files("genoshare.demo") / "data" / "htsget"))
    return [
        root / "bam" / "htsnexus_test_NA12878.bam",
        root / "cram" / "htsnexus_test_NA12878.cram",
        root / "vcf" / "spec-v4.3.vcf.gz",
        root / "bcf" / "spec-v4.3.bcf",
    ]


def demo_cohort() -> Path:
    """The synthetic cohort's directory (see data/cohort/SOURCE.txt), shipped so the node needs no simulator."""
    return Path(str(files("genoshare.demo") / "data" / "cohort"))


@dataclass
class DemoNode:
    settings: Settings
    passport: str
    researcher_passport_without_grant: str
    #: The demo passport broker (``genoshare.demo.broker``) the portal signs people in at, if started.
    broker_url: str | None = None
    #: One participant's personal consent link (a new one each time the demo starts).
    consent_link: str | None = None

    @property
    def passport_file(self) -> Path:
        return self.settings.data_dir / "demo-passport.jwt"

    @property
    def committee_passport_file(self) -> Path:
        return self.settings.data_dir / "demo-committee-passport.jwt"

    def instructions(self) -> str:
        url = self.settings.public_url
        cohort_file = f"{url}/ga4gh/drs/v1/objects/{COHORT_DATASET}.cohort.vcf.gz"
        return (
            textwrap.dedent(f"""
            [bold]genoshare demo node[/] — data in {self.settings.data_dir}
              service-info    {url}/service-info
              DRS             {url}/ga4gh/drs/v1/service-info
              htsget          {url}/htsget/reads/htsnexus_test_NA12878?referenceName=11&start=4999999&end=5010000
              Beacon v2       {url}/api/info
              public dataset  {url}/ga4gh/drs/v1/objects/{PUBLIC_DATASET}
              API docs        {url}/docs

            A demo researcher's passport (ResearcherStatus + a grant for {COHORT_DATASET}, valid 24 h):
              export PASSPORT=$(cat {self.passport_file})

            Try controlled access:
              curl -s {cohort_file}             # 401 without a passport
              curl -s -H "Authorization: Bearer $PASSPORT" {cohort_file}
              curl -s -H "Authorization: Bearer $PASSPORT" {cohort_file}/access/https
              curl -s -H "Authorization: Bearer $PASSPORT" "{url}/api/individuals?requestedGranularity=count"

            The cohort's access committee member (to approve requests at {url}/governance/requests):
              export DAC=$(cat {self.committee_passport_file})
        """)
            + self.portal_instructions()
        )

    def portal_instructions(self) -> str:
        url = self.settings.public_url
        participant = f"A participant's consent link (DEMO ONLY):\n  {self.consent_link}\n" if self.consent_link else ""
        if self.broker_url is None:
            return f"\nWeb portal: {url}/portal/ (sign in by pasting a passport)\n{participant}"
        signin = f"{url}/portal/signin/oidc?login_hint="
        return (
            textwrap.dedent(f"""
            [bold]Web portal[/]  {url}/portal/
            Sign in through the demo passport broker ({self.broker_url}, DEMO ONLY) — open one of:
              researcher         {signin}{ACCOUNTS[0].subject}&next=/portal/datasets
              committee member   {signin}{ACCOUNTS[1].subject}&next=/portal/
              steward            {signin}{ACCOUNTS[2].subject}&next=/portal/
        """)
            + participant
        )


def prepare_demo(
    data_dir: Path, public_url: str, console: Console | None = None, broker_url: str | None = None
) -> DemoNode:
    """The demo node; with ``broker_url``, its portal signs people in at the demo broker running there."""
    data_dir = Path(data_dir)
    keys = data_dir / "keys"
    issuer = VisaIssuer.load_or_create(DEMO_ISSUER, keys / "demo-issuer.jwk.json")
    jwks = keys / "demo-issuer.jwks.json"
    issuer.write_jwks(jwks)
    trusted = [TrustedIssuer(issuer=DEMO_ISSUER, jwks_file=jwks.resolve())]
    portal: dict[str, object] = {}
    if broker_url is not None:
        # The broker's access tokens are passports (UserInfo), audience: the portal's client at the broker.
        trusted.append(TrustedIssuer(issuer=broker_url, broker=True))
        portal = {
            "portal": {"oidc_issuer": broker_url, "oidc_client_id": CLIENT_ID},
            "roles": {"stewards": [{"subject": ACCOUNTS[2].subject, "issuer": broker_url}]},
        }
    settings = load_settings(
        data_dir,
        public_url=public_url,
        trusted_issuers=trusted,
        # The demo issuer stands in for an external DAC: its grants count (a node's own always do).
        passports={
            "controlled_access_grants": {"issuers": [DEMO_ISSUER], "sources": [DEMO_ISSUER]},
            "audiences": [CLIENT_ID] if broker_url is not None else [],
        },
        **portal,
    )
    # Rewritten every time: the demo may be started on another port than last time.
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    write_config_file(settings)
    node = init_node(settings)
    datasets = build_datasets(node)
    existing = {dataset.id for dataset in datasets.list()}
    ingestor = build_ingestor(node)
    say = console.print if console else (lambda *_: None)
    if PUBLIC_DATASET not in existing:
        datasets.create(
            NewDataset(
                id=PUBLIC_DATASET,
                title="htsget test data (NA12878 reads, VCF 4.3 spec example)",
                custodian="GA4GH htsget compliance suite / htsget-rs",
                access_level="public",
                duo_codes=["NRES"],
                license="MIT (htsget-rs), Apache-2.0 (htsget-compliance)",
                pseudonymise=False,
                description="Public 1000 Genomes NA12878 reads on chromosomes 11 and 20, and the VCFv4.3 example.",
            )
        )
    say(f"ingesting {PUBLIC_DATASET} …")
    ingestor.ingest(PUBLIC_DATASET, demo_files(), actor="demo")
    if COHORT_DATASET not in existing:
        datasets.create(
            NewDataset(
                id=COHORT_DATASET,
                title="Synthetic cohort (msprime), 100 individuals",
                custodian="genoshare demo",
                access_level="controlled",
                duo_codes=["GRU", "NPU"],
                description="Simulated genotypes and phenotypes; no real person is in it.",
            )
        )
    committee = [f"{DEMO_COMMITTEE}@{DEMO_ISSUER}"]
    if broker_url is not None:
        committee.append(f"{ACCOUNTS[1].subject}@{broker_url}")  # the same member, signed in at the broker
    datasets.set_committee(COHORT_DATASET, committee, auto_approve=False)
    cohort = demo_cohort()
    say(f"ingesting {COHORT_DATASET} …")
    ingestor.ingest(COHORT_DATASET, [cohort / "cohort.vcf.gz"], actor="demo")
    build_phenotypes(node).ingest(COHORT_DATASET, [cohort / "individuals.tsv"])
    consent = build_consent(node)
    someone = consent.find(COHORT_DATASET, consent.records(COHORT_DATASET)[0].participant)
    consent_link = f"{settings.public_url}/consent/{consent.issue_link(someone, 'demo')}"
    node.close()
    researcher = issuer.visa(
        DEMO_RESEARCHER,
        RESEARCHER_STATUS,
        "https://doi.org/10.1038/s41431-018-0219-y",
        by="so",
        lifetime=PASSPORT_LIFETIME,
    )
    grant = issuer.visa(
        DEMO_RESEARCHER,
        CONTROLLED_ACCESS_GRANTS,
        f"{settings.public_url}/datasets/{COHORT_DATASET}",
        by="dac",
        lifetime=PASSPORT_LIFETIME,
    )
    demo = DemoNode(
        settings=settings,
        passport=issuer.passport(DEMO_RESEARCHER, [researcher, grant], lifetime=PASSPORT_LIFETIME),
        researcher_passport_without_grant=issuer.passport(DEMO_RESEARCHER, [researcher], lifetime=PASSPORT_LIFETIME),
        broker_url=broker_url,
        consent_link=consent_link,
    )
    demo.passport_file.write_text(demo.passport + "\n")
    demo.committee_passport_file.write_text(
        issuer.passport(
            DEMO_COMMITTEE,
            [
                issuer.visa(
                    DEMO_COMMITTEE,
                    RESEARCHER_STATUS,
                    "https://doi.org/10.1038/s41431-018-0219-y",
                    by="so",
                    lifetime=PASSPORT_LIFETIME,
                )
            ],
            lifetime=PASSPORT_LIFETIME,
        )
        + "\n"
    )
    return demo


__all__ = ["COHORT_DATASET", "PUBLIC_DATASET", "DemoNode", "prepare_demo"]
