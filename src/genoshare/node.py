"""The composition root: one ``Node`` holds the configured pieces that services share, and builds them.

Built from ``Settings`` by ``Node.open``; ``init_node`` creates a fresh data directory (config, keys,
schema, audit chain).  Services never see the ``Node``: each ``build_*`` function here hands one the parts
it uses, and ``build_services`` makes the set the API keeps for its lifetime (the CLI calls the builder of
the one service a command needs).  Nothing here is a module-level singleton, so a test can run several nodes.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import httpx
import tomli_w
from sqlalchemy.engine import make_url

from genoshare.access.attack_watch import SqlAttackWatch
from genoshare.access.consent_tokens import ConsentTokens
from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import PassportVerifier, TrustedKeys, peer_node_issuers
from genoshare.access.policy import AccessPolicy
from genoshare.access.privacy import PrivacyGuard
from genoshare.access.privacy_state import SqlPrivacyState
from genoshare.access.roles import Roles
from genoshare.access.tickets import TicketSigner
from genoshare.audit import AuditLog, Entry
from genoshare.crypt.keys import NodeKeys, generate_keypair
from genoshare.errors import InvalidInput, Unavailable
from genoshare.settings import CONFIG_FILE, Settings, TrustedIssuer
from genoshare.store.db import Database, migrate, schema_problem
from genoshare.store.ledger import Ledger, Told
from genoshare.store.objects import ObjectStore, create_object_store

if TYPE_CHECKING:
    from genoshare.beacon.phenotypes import PhenotypeIngest
    from genoshare.beacon.service import BeaconService
    from genoshare.clinical.annotations import AnnotationStore
    from genoshare.clinical.lookup import ClinicalLookup
    from genoshare.clinical.mme import MatchmakerClient, MatchmakerService
    from genoshare.clinical.reference import ReferenceGenome
    from genoshare.datasets.service import DatasetService
    from genoshare.drs.reads import TicketReads
    from genoshare.drs.service import DrsService
    from genoshare.governance.consent import ConsentService
    from genoshare.governance.documents import RequestDocuments
    from genoshare.governance.lifecycle import Lifecycle
    from genoshare.governance.notify import Notifier
    from genoshare.governance.rederive import RederivationWorker, Rederiver
    from genoshare.governance.requests import AccessRequests
    from genoshare.governance.subsets import Subsets
    from genoshare.governance.usage import UsageReports
    from genoshare.htsget.service import HtsgetService
    from genoshare.index.published import BeaconIndexer
    from genoshare.ingest.pipeline import Ingestor

NODE_KEY_NAME = "node"
#: Node processes create files for their own user only: controlled data, sample names and keys live here.
PRIVATE_UMASK = 0o077
#: The audit chain's HMAC key: beside the other keys, apart from the database it protects.
AUDIT_KEY_FILE = "audit.key"
#: The key of pseudonyms, read names and date shifts, made by the first ingest.
PSEUDONYM_KEY_FILE = "pseudonym.secret"


@dataclass
class Node:
    settings: Settings
    database: Database
    objects: ObjectStore
    audit: AuditLog

    @classmethod
    def open(cls, settings: Settings, *, new_database: bool = False) -> Node:
        """The node of ``settings``; refuses a database it must not use (``Unavailable``, one line).

        Refused: an empty SQLite database in an initialised node, and a schema that is not this genoshare's
        (upgrades are explicit: the message names ``genoshare db upgrade``).

        ``new_database`` is for ``init_node`` only, which creates the database of a new node.
        """
        if not new_database:
            check_database(settings)
        make_private(settings)
        database = Database(settings.database_url, settings.database)
        if not new_database:
            try:
                problem = schema_problem(database.engine)
            except BaseException:
                database.dispose()
                raise
            if problem is not None:
                database.dispose()
                raise Unavailable(f"{problem[0]}: {problem[1]}")
        audit = AuditLog(database, settings.keys_dir / AUDIT_KEY_FILE)
        scratch = settings.s3.scratch_dir or settings.data_dir / "scratch"
        ledger = Ledger(database, _told_of_changed_objects(audit))
        objects = create_object_store(settings.objects_url, settings.s3, scratch, ledger)
        return cls(settings, database, objects, audit)

    @cached_property
    def keys(self) -> NodeKeys:
        """The node's Crypt4GH keys: everything at rest is encrypted to them; they follow a rotation."""
        return NodeKeys(self.settings.keys_dir, NODE_KEY_NAME)

    @cached_property
    def tickets(self) -> TicketSigner:
        return TicketSigner.load_or_create(self.settings.keys_dir / "ticket.secret", self.settings.ticket_ttl_seconds)

    @cached_property
    def issuer(self) -> VisaIssuer:
        """The node's own visa issuer: it signs the grants its access committees approve."""
        issuer = VisaIssuer.load_or_create(self.settings.public_url, self.settings.keys_dir / "issuer.jwk.json")
        issuer.write_jwks(self.issuer_jwks_file)
        return issuer

    @property
    def issuer_jwks_file(self) -> Path:
        return self.settings.keys_dir / "issuer.jwks.json"

    @cached_property
    def passports(self) -> PassportVerifier:
        """Verifies passports against the configured issuers and the node itself."""
        settings = self.settings
        own = TrustedIssuer(issuer=self.issuer.issuer, jwks_file=self.issuer_jwks_file)
        peers = peer_node_issuers(settings.network.peers)
        issuers = [*peers, *settings.trusted_issuers, own]
        keys = TrustedKeys(issuers, self.http, settings.passports.jwks_refetch_seconds)
        audiences = (settings.public_url, settings.node_id)
        return PassportVerifier(
            keys,
            settings.passports,
            node_issuer=self.issuer.issuer,
            audiences=audiences,
            peer_nodes=[peer.issuer for peer in peers],
        )

    @cached_property
    def http(self) -> httpx.Client:
        """The node's one HTTP client (issuers' keys, brokers): kept-alive connections, closed with the node."""
        return httpx.Client(timeout=10, follow_redirects=False)

    @cached_property
    def privacy(self) -> PrivacyGuard:
        """Beacon membership-inference defences, with their state in the metadata database."""
        wait_for_disk = self.settings.database.privacy_writes_wait_for_disk
        return PrivacyGuard(
            SqlPrivacyState(self.database, wait_for_disk=wait_for_disk),
            linked_issuers=self.settings.linked_issuers,
            identity_link_issuers=self.settings.identity_link_issuers,
            watch=SqlAttackWatch(self.database, self.audit, wait_for_disk=wait_for_disk),
        )

    @cached_property
    def policy(self) -> AccessPolicy:
        return AccessPolicy(self.audit, self.database, self.settings.public_url)

    @cached_property
    def roles(self) -> Roles:
        """Stewards (``roles.stewards`` in the settings) and committee members."""
        return Roles(self.database, self.settings.roles.stewards)

    @cached_property
    def consent_tokens(self) -> ConsentTokens:
        """Which participant a consent link's secret speaks for."""
        return ConsentTokens(self.database)

    @cached_property
    def notifier(self) -> Notifier:
        """Mails and webhook posts about access requests (``notify`` in the settings), from a background thread."""
        from genoshare.governance.notify import Notifier

        return Notifier(self.settings.notify)

    def close(self) -> None:
        if "notifier" in self.__dict__:
            self.__dict__.pop("notifier").close()
        if "http" in self.__dict__:
            self.__dict__.pop("http").close()
        self.database.dispose()


@dataclass(frozen=True)
class Services:
    """The services the API serves, each built once at start-up (``build_services``) and kept in ``app.state``."""

    datasets: DatasetService
    drs: DrsService
    htsget: HtsgetService
    #: ``/data``: the bytes DRS and htsget tickets open.
    reads: TicketReads
    beacon: BeaconService
    access_requests: AccessRequests
    consent: ConsentService
    #: Rewrites files without people who withdrew, in the background (started and stopped with the API).
    rederivations: RederivationWorker
    usage: UsageReports
    #: Documents attached to access requests, encrypted at rest.
    documents: RequestDocuments


def build_services(node: Node) -> Services:
    """Every service of the API, sharing one ``Subsets`` (served files without people whose consent excludes)."""
    subsets = build_subsets(node)
    beacon = build_beacon(node)
    rederivations = build_rederivations(node)
    return Services(
        datasets=build_datasets(node),
        drs=build_drs(node, subsets),
        htsget=build_htsget(node, subsets),
        reads=build_reads(node, subsets),
        beacon=beacon,
        access_requests=build_access_requests(node),
        # Beacon sees a consent change made here at once (it would within half a second anyway).
        consent=build_consent(node, changed=(beacon.invalidate,), rederive=rederivations.submit),
        rederivations=rederivations,
        usage=build_usage(node),
        documents=build_documents(node),
    )


# Imported inside the builders: services import storage and access modules that this module must not wait for.


def build_datasets(node: Node) -> DatasetService:
    from genoshare.datasets.service import DatasetService

    return DatasetService(node.database)


def _told_of_changed_objects(audit: AuditLog) -> Told:
    """An object found changed in the store outside the node (``genoshare.store.ledger``): its stewards are told."""

    def told(key: str, found: str, recorded: str) -> None:
        reason = "the store holds other bytes than the node stored: not served"
        audit.record(
            Entry("node", "objects.changed", f"stored/{key}", "deny", reason, {"etag": found, "recorded": recorded})
        )

    return told


def build_lifecycle(node: Node) -> Lifecycle:
    from genoshare.governance.lifecycle import Lifecycle

    return Lifecycle(node.database, node.objects, node.audit, node.settings.data_dir)


def build_subsets(node: Node) -> Subsets:
    from genoshare.governance.subsets import Subsets

    return Subsets(node.database, node.objects, build_rederiver(node).derive_or_report)


def build_drs(node: Node, subsets: Subsets) -> DrsService:
    from genoshare.drs.indexes import IndexFiles
    from genoshare.drs.service import DrsService

    return DrsService(
        node.settings, node.database, build_datasets(node), node.policy, node.tickets, subsets, IndexFiles(node.objects)
    )


def build_htsget(node: Node, subsets: Subsets) -> HtsgetService:
    from genoshare.htsget.service import HtsgetService

    return HtsgetService(
        node.settings,
        node.database,
        node.objects,
        node.keys,
        node.policy,
        node.tickets,
        subsets,
        node.audit,
    )


def build_reads(node: Node, subsets: Subsets) -> TicketReads:
    from genoshare.drs.reads import TicketReads

    return TicketReads(node.database, node.objects, node.keys, node.tickets, node.policy, subsets, node.audit)


def build_beacon(node: Node) -> BeaconService:
    from genoshare.beacon.service import BeaconService

    reference = _reference(node.settings)
    alleles = None
    if reference is not None:
        from genoshare.clinical.allele_ids import ReferenceAlleleIds

        alleles = ReferenceAlleleIds(reference)
    return BeaconService(
        node.settings, node.database, node.policy, node.privacy, node.audit, objects=node.objects, vrs=alleles
    )


def _reference(settings: Settings) -> ReferenceGenome | None:
    """The steward's reference genome (``clinical.reference_fasta``): HGVS indels and GA4GH VRS ids need it."""
    from genoshare.clinical.reference import ReferenceGenome

    clinical = settings.clinical
    if clinical.reference_fasta is None:
        return None
    return ReferenceGenome(clinical.reference_fasta, clinical.reference_assembly)


def build_indexer(node: Node, engine: Literal["embedded", "spark"] = "embedded") -> BeaconIndexer:
    """Builds Beacon indexes in this process, or on the ``[spark]`` cluster.

    Only the steward's commands (ingest, beacon-index) take ``ingest_engine``: a re-derivation after a
    withdrawal, in the serving process, builds there and never starts a JVM.
    """
    from genoshare.index.published import BeaconIndexer

    indexer = BeaconIndexer(node.database, node.settings.data_dir, node.objects, node.keys)
    if engine == "spark":
        from genoshare.index.spark import SparkIndexBuilder, spark_session

        spark = node.settings.spark
        indexer.build = SparkIndexBuilder(lambda: spark_session(spark.master, spark.conf), spark.records_per_task)
    return indexer


def build_ingestor(node: Node, engine: Literal["embedded", "spark"] | None = None) -> Ingestor:
    from genoshare.ingest.deidentify import Pseudonymiser
    from genoshare.ingest.pipeline import Ingestor

    pseudonymiser = Pseudonymiser.load_or_create(node.settings.keys_dir / PSEUDONYM_KEY_FILE)
    indexer = build_indexer(node, engine or node.settings.ingest_engine)
    return Ingestor(node.database, node.objects, node.keys, node.audit, pseudonymiser, indexer)


def build_phenotypes(node: Node) -> PhenotypeIngest:
    from genoshare.beacon.phenotypes import PhenotypeIngest
    from genoshare.ingest.deidentify import Pseudonymiser
    from genoshare.ingest.metadata import MetadataDeidentifier

    secret = node.settings.keys_dir / PSEUDONYM_KEY_FILE
    pseudonymiser = Pseudonymiser.load_or_create(secret)  # first: it makes the secret of a node without one
    return PhenotypeIngest(node.database, pseudonymiser, MetadataDeidentifier(secret.read_bytes()))


def build_access_requests(node: Node) -> AccessRequests:
    from genoshare.access.requests import RequestAccess
    from genoshare.governance.requests import AccessRequests

    access = RequestAccess(node.database, node.roles)
    return AccessRequests(
        node.database, node.audit, node.issuer, node.settings.public_url, access, notifier=node.notifier
    )


def build_consent(
    node: Node,
    *,
    changed: Sequence[Callable[[str], object]] = (),
    rederive: Callable[[Sequence[str]], object] | None = None,
) -> ConsentService:
    """Consent records; the access policy's narrowings and ``changed`` see each change at once."""
    from genoshare.governance.consent import ConsentService

    listeners = (node.policy.consent.invalidate, *changed)
    return ConsentService(node.database, node.audit, changed=listeners, rederive=rederive)


def build_rederiver(node: Node) -> Rederiver:
    from genoshare.governance.rederive import Rederiver

    return Rederiver(node.database, node.objects, node.audit, node.keys, build_indexer(node))


def build_rederivations(node: Node) -> RederivationWorker:
    from genoshare.governance.rederive import RederivationWorker

    return RederivationWorker(build_rederiver(node))


def build_documents(node: Node) -> RequestDocuments:
    from genoshare.access.requests import RequestAccess
    from genoshare.governance.documents import RequestDocuments

    return RequestDocuments(node.database, node.objects, node.keys, RequestAccess(node.database, node.roles))


def build_usage(node: Node) -> UsageReports:
    from genoshare.governance.usage import UsageReports

    return UsageReports(node.database, node.audit)


def build_matchmaker(node: Node, beacon: BeaconService) -> MatchmakerService:
    """Matchmaking reads the Beacon's people and variant indexes through its caches, never a second copy."""
    from genoshare.beacon.cohort import BeaconCohort
    from genoshare.clinical.mme import MatchmakerService
    from genoshare.governance.notify import Notice

    cohort = BeaconCohort(node.database, beacon.people, beacon.catalog)
    notifier = node.notifier

    def notify(subject: str, body: str, to: tuple[str, ...], payload: dict[str, Any]) -> None:
        notifier.send(Notice("mme.match", subject, body, to, payload))

    return MatchmakerService(node.database, node.audit, node.settings, cohort, notify=notify)


def build_matchmaker_client(node: Node) -> MatchmakerClient:
    from genoshare.clinical.mme import MatchmakerClient

    return MatchmakerClient(node.settings, node.audit)


def build_annotations(node: Node) -> AnnotationStore:
    from genoshare.beacon.variants import canonical_assembly
    from genoshare.clinical.annotations import AnnotationStore

    return AnnotationStore(node.database, canonical_assembly)


def build_clinical_lookup(node: Node, beacon: BeaconService) -> ClinicalLookup:
    """The lookup's counts are Beacon answers, with every access decision and privacy defence they carry."""
    from genoshare.beacon.alleles import BeaconAlleles
    from genoshare.clinical.lookup import ClinicalLookup

    return ClinicalLookup(build_annotations(node), BeaconAlleles(beacon), _reference(node.settings))


def check_database(settings: Settings) -> None:
    """Refuse a missing SQLite database in a data directory that already holds a node's keys.

    SQLite would create it silently: a node initialised on PostgreSQL, run once without its database URL,
    would then answer from a new, empty database (no datasets, no consent, a new audit chain).
    """
    url = make_url(settings.database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return
    if (settings.keys_dir / f"{NODE_KEY_NAME}.sec").exists() and not Path(url.database).exists():
        raise InvalidInput(
            f"{settings.data_dir} is an initialised node but its database {url.database} does not exist; it was "
            "probably initialised on another database: set database_url in "
            f"{settings.data_dir / CONFIG_FILE} or GENOSHARE_DATABASE_URL (no new database was created)"
        )


def make_private(settings: Settings) -> None:
    """The data directory 0700 and a SQLite database (with its -wal and -shm) 0600, whatever made them.

    Also tightens a node made by an older genoshare, which left them readable by every user of the machine.
    """
    if settings.data_dir.is_dir():
        with contextlib.suppress(PermissionError):  # not ours to change: the operator's layout
            settings.data_dir.chmod(0o700)
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = Path(f"{url.database}{suffix}")
            if path.exists():
                with contextlib.suppress(PermissionError):
                    path.chmod(0o600)


def init_node(settings: Settings, *, write_config: bool = True) -> Node:
    """Create or complete a node's data directory; safe to run again on an existing one.

    If it fails (a database it cannot reach, a full disk), whatever it made is removed again: a half-made
    node would pass for an initialised one (its keys exist) and refuse the next ``init``'s database.
    """
    check_database(settings)
    made = _new_paths(settings)
    try:
        return _init_node(settings, write_config=write_config)
    except BaseException:
        for path in sorted(set(_new_paths(settings)) - set(made), key=lambda path: len(path.parts), reverse=True):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


def _new_paths(settings: Settings) -> list[Path]:
    """The data directory, its parents up to one that exists, and what it and its keys directory hold."""
    paths = [settings.data_dir, *(parent for parent in settings.data_dir.parents if not parent.exists())]
    for directory in (settings.data_dir, settings.keys_dir):
        if directory.is_dir():
            paths.extend(directory.iterdir())
    return [path for path in paths if path.exists()]


def _init_node(settings: Settings, *, write_config: bool) -> Node:
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if write_config and not (settings.data_dir / CONFIG_FILE).exists():
        write_config_file(settings)
    keys_dir = settings.keys_dir
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (keys_dir / f"{NODE_KEY_NAME}.sec").exists():
        generate_keypair(keys_dir, NODE_KEY_NAME)
    node = Node.open(settings, new_database=True)
    migrate(node.database.engine)
    node.audit.ensure_head()
    # Only a chain without entries gets a new key here; a missing key beside entries is refused (restore it,
    # or `genoshare audit adopt` a chain older than audit keys), never silently made again.
    node.audit.create_key()
    node.tickets  # noqa: B018 - creates the ticket secret now rather than on the first request
    node.issuer  # noqa: B018 - and the node's visa-signing key
    make_private(settings)  # the database file exists now
    return node


def write_config_file(settings: Settings, path: Path | None = None) -> None:
    """Write the settings that differ from the embedded defaults, so the file documents the node.

    The database URL is always kept unless it is the SQLite file inside the data directory (which moves with
    it): a node on PostgreSQL must not depend on an environment variable that someone may forget.
    """
    # S3 secrets stay where the operator put them (environment, a secrets manager), never copied into the file.
    secrets = {"s3": {"secret_access_key", "session_token"}}
    values = settings.model_dump(mode="json", exclude={"data_dir": True, **secrets}, exclude_defaults=True)
    if values.get("database_url") == settings.default_database_url:
        values.pop("database_url")
    if values.get("objects_url") == settings.default_objects_url:
        values.pop("objects_url")
    target = path or settings.data_dir / CONFIG_FILE
    # It may hold the database URL with its password: for this user only.
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(
            "# genoshare node configuration; GENOSHARE_* environment variables override it.\n" + tomli_w.dumps(values)
        )
