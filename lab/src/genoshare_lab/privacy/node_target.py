"""The attack target as a real node: the cohort's members ingested as a dataset, asked through ``BeaconService``.

Issue 8 wants the node's own Beacon handler under attack, so that the access decision, the granularity, the
privacy guard and the guard's state are the node's, not a re-implementation. ``build_node`` writes the
beacon members as a bgzipped VCF (one biallelic SNV per cohort site, on contig 1 at ``site_position``),
ingests it with the node's ingest pipeline into a *controlled* dataset (which validates, pseudonymises,
encrypts and builds the Beacon variant index), and caches the node directory by cohort digest.

``NodeBeacon`` asks each query as ``BeaconService.query`` (what ``GET /api/g_variants`` calls, in process)
with one passport ``Identity`` per target session: a registered researcher (ResearcherStatus visa, no grant),
which on a controlled dataset is count-level access, so ``NODE_DEFAULTS[Granularity.COUNT]`` or the dataset's
``beacon_policy["privacy"]`` applies. The guard is the node's ``PrivacyGuard`` on the node's
``SqlPrivacyState`` (the metadata database); only its coin (a seeded ``random.Random``, so runs reproduce)
and its clock (one simulated second per request, so rate limits act at a human's pace) are the harness's;
the coin is reseeded per session (``SessionCoin``), so any sample of sessions reproduces the full run's.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Literal, overload

import numpy as np
import pysam
from sqlalchemy import update

from genoshare.access.granularity import Granularity
from genoshare.access.passports import Identity, Visa
from genoshare.access.policy import RESEARCHER_STATUS
from genoshare.access.privacy import PrivacyGuard, PrivacySettings
from genoshare.access.privacy_state import MemoryPrivacyState, PrivacyState
from genoshare.beacon.framework import BY_PATH
from genoshare.beacon.request import BeaconRequest
from genoshare.beacon.service import BeaconService
from genoshare.datasets.service import DatasetService, NewDataset
from genoshare.node import build_ingestor, init_node
from genoshare.settings import load_settings
from genoshare.store.models import Dataset
from genoshare.store.privacy_tables import PrivacyAnswer, PrivacyLink, PrivacySession, PrivacySpend
from genoshare_lab.privacy.cohort import AttackCohort

DATASET = "attackcohort"
CONTIG = "1"
REF, ALT = "A", "G"
ISSUER = "https://passports.attackers.example.org"
_SPACING = 100
_BATCH = 8192
_GENOTYPES = np.array([b"\t0/0", b"\t0/1", b"\t1/1"], dtype="S4")


@overload
def site_position(site: int) -> int: ...
@overload
def site_position(site: np.ndarray) -> np.ndarray: ...
def site_position(site: int | np.ndarray) -> int | np.ndarray:
    """0-based start of a cohort site on contig 1 (sites are spaced so none overlap)."""
    return 1000 + _SPACING * site


def _dosages(cohort: AttackCohort, sites: slice, rng: np.random.Generator) -> np.ndarray:
    """Members' copies of each site, from who carries it and its allele count.

    The cohort keeps carriers and counts, not dosages, so ``ac - carriers`` of the carriers (picked at
    random) get two copies. Carriers and counts, all the Beacon and its guard use, are exactly the cohort's.
    """
    n = cohort.config.n_members
    carrying = np.unpackbits(cohort.beacon_bits[sites], axis=1)[:, :n].astype(np.int8)
    homozygous = cohort.beacon_ac[sites] - carrying.sum(axis=1)
    for row in np.flatnonzero(homozygous > 0).tolist():
        carriers = np.flatnonzero(carrying[row])
        carrying[row, rng.choice(carriers, size=int(homozygous[row]), replace=False)] = 2
    return carrying


def write_members_vcf(cohort: AttackCohort, path: Path, seed: int = 0) -> None:
    """The beacon members' genotypes at every cohort site, as a bgzipped VCF the ingest pipeline accepts."""
    n = cohort.config.n_members
    length = int(site_position(cohort.n_sites)) + 1000
    header = [
        "##fileformat=VCFv4.2",
        "##source=genoshare_lab.privacy (msprime attack cohort; synthetic, not real individuals)",
        "##reference=GRCh38",
        f"##contig=<ID={CONTIG},length={length},assembly=GRCh38>",
        '##FORMAT=<ID=GT,Number=1,Type=String,Description="Genotype">',
        "\t".join(["#CHROM", "POS", "ID", "REF", "ALT", "QUAL", "FILTER", "INFO", "FORMAT"])
        + "".join(f"\tmember{i:05d}" for i in range(n)),
    ]
    rng = np.random.default_rng(seed)
    with pysam.BGZFile(str(path), "wb", index=None) as out:
        out.write(("\n".join(header) + "\n").encode())
        for begin in range(0, cohort.n_sites, _BATCH):
            sites = slice(begin, min(begin + _BATCH, cohort.n_sites))
            dosage = _dosages(cohort, sites, rng)
            cells = _GENOTYPES[dosage]  # (sites, members) of b"\t0/1"
            positions = site_position(np.arange(sites.start, sites.stop)) + 1  # VCF is 1-based
            fixed = [f"{CONTIG}\t{p}\t.\t{REF}\t{ALT}\t.\tPASS\t.\tGT".encode() for p in positions.tolist()]
            body = cells.view(f"S{4 * n}").ravel()
            out.write(b"".join(f + b + b"\n" for f, b in zip(fixed, body.tolist(), strict=True)))


def build_node(cohort: AttackCohort, root: Path) -> Path:
    """A node directory holding the cohort's members as controlled dataset ``attackcohort``, built once.

    The node is made with ``init_node`` and the dataset with ``DatasetService``; the VCF goes through
    ``Ingestor.ingest`` (validation, pseudonyms, Crypt4GH, Beacon variant index), as a steward's would.
    """
    node_dir = root / f"node-{cohort.config.digest()}"
    if (node_dir / "ready").exists():
        return node_dir
    shutil.rmtree(node_dir, ignore_errors=True)
    node_dir.mkdir(parents=True)
    vcf = node_dir / "members.vcf.gz"
    write_members_vcf(cohort, vcf)
    node = init_node(load_settings(node_dir / "data", environment="test"))
    try:
        DatasetService(node.database).create(
            NewDataset(DATASET, "attack cohort (synthetic)", "privacy harness", "controlled", ["GRU"])
        )
        build_ingestor(node).ingest(DATASET, [vcf])
    finally:
        node.close()
    vcf.unlink()
    (node_dir / "ready").write_text("ingested\n")
    return node_dir


class SteppingClock:
    """One simulated second per request, so rate limits apply at a realistic pace rather than never."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class SessionCoin(random.Random):
    """The guard's coin, reseeded from (run seed, user) at the start of each user's session.

    Each session's coin falls the same way whichever sessions ran before it, so the node's handler can be
    asked a sample of the sessions and compared answer for answer with the oracle's run of all of them.
    """

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.run_seed = seed

    def start_session(self, user: str) -> None:
        self.seed(f"{self.run_seed}:{user}")


def researcher(subject: str) -> Identity:
    """A registered researcher's passport identity: ResearcherStatus visa, no grant for the dataset."""
    visa = Visa(RESEARCHER_STATUS, "https://doi.org/10.1038/s41431-018-0219-y", ISSUER, "so", 0, ISSUER, 2**31, subject)
    return Identity(subject, ISSUER, (visa,))


class NodeBeacon:
    """The node's Beacon handler with one defence in force on the attack dataset; one session per user."""

    def __init__(
        self, node_dir: Path, settings: PrivacySettings | None, seed: int, state: Literal["sql", "memory"] = "sql"
    ) -> None:
        """``settings`` None: the node's own defaults (``NODE_DEFAULTS``), the dataset's policy left empty.

        ``state="sql"`` keeps budgets and cached answers in the node's metadata database, as the server
        does; ``"memory"`` swaps in ``MemoryPrivacyState`` (same protocol, same answers -- a test holds the
        two equal) for the 800,000-answer full-size sessions, where SQLite's ~6 ms a stateful answer
        would take over an hour. Everything else is the node's either way.
        """
        # init_node is idempotent: it brings a cached node's schema up to date (migrations since it was built).
        self.node = init_node(load_settings(node_dir / "data", environment="test"))
        if settings is None:
            policy: dict[str, object] = {}
        else:
            # Every field set, so the dataset's policy is exactly this defence whatever NODE_DEFAULTS say.
            values = {name: getattr(settings, name) for name in settings.__dataclass_fields__}
            policy = {"privacy": {"default": values}}
        with self.node.database.session() as session:
            session.execute(update(Dataset).where(Dataset.id == DATASET).values(beacon_policy=policy))
            for table in (PrivacyAnswer, PrivacySpend, PrivacySession, PrivacyLink):
                session.query(table).delete()  # a fresh measurement: nothing spent or cached by an earlier run
        store: PrivacyState = self.node.privacy.state if state == "sql" else MemoryPrivacyState()
        self.coin = SessionCoin(seed)  # a reproducible measurement, not a secret
        self.guard = PrivacyGuard(
            store,
            linked_issuers=self.node.settings.linked_issuers,
            rng=self.coin,
            clock=SteppingClock(),
        )
        node = self.node
        self.service = BeaconService(node.settings, node.database, node.policy, self.guard, node.audit, max_age=3600.0)
        self.entry = BY_PATH["g_variants"]

    def ask(self, identity: Identity, site: int) -> bool:
        """One sequence query for the site's allele, boolean granularity, as ``GET /api/g_variants`` asks it."""
        request = BeaconRequest(
            parameters={
                "referenceName": CONTIG,
                "start": [int(site_position(site))],
                "referenceBases": REF,
                "alternateBases": ALT,
                "assemblyId": "GRCh38",
            },
            granularity=Granularity.BOOLEAN,
        )
        response = self.service.query(self.entry, request, identity)
        return bool(response["responseSummary"]["exists"])

    def session(self, user: str, sites: np.ndarray) -> np.ndarray:
        identity = researcher(user)
        self.coin.start_session(user)
        return np.array([self.ask(identity, site) for site in sites.tolist()], dtype=bool)

    def close(self) -> None:
        self.node.close()
