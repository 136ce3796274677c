"""The composition root: one ``Node`` holds the configured pieces that services and APIs share.

Built from ``Settings`` by ``Node.open``; ``init_node`` creates a fresh data directory (config, keys,
schema, audit chain).  Nothing here is a module-level singleton, so a test can run several nodes.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import httpx
import tomli_w
from sqlalchemy.engine import make_url

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import PassportVerifier, TrustedKeys
from genoshare.access.policy import AccessPolicy
from genoshare.access.privacy import PrivacyGuard
from genoshare.access.privacy_state import SqlPrivacyState
from genoshare.access.tickets import TicketSigner
from genoshare.audit import AuditLog
from genoshare.crypt.keys import KeyPair, generate_keypair, load_keypair
from genoshare.errors import InvalidInput
from genoshare.settings import CONFIG_FILE, Settings, TrustedIssuer
from genoshare.store.db import Database, migrate
from genoshare.store.objects import ObjectStore, create_object_store

NODE_KEY_NAME = "node"
#: Node processes create files for their own user only: controlled data, sample names and keys live here.
PRIVATE_UMASK = 0o077
#: The audit chain's HMAC key: beside the other keys, apart from the database it protects.
AUDIT_KEY_FILE = "audit.key"


@dataclass
class Node:
    settings: Settings
    database: Database
    objects: ObjectStore
    audit: AuditLog

    @classmethod
    def open(cls, settings: Settings, *, new_database: bool = False) -> Node:
        """The node of ``settings``; refuses to start an empty SQLite database in an initialised node.

        ``new_database`` is for ``init_node`` only, which creates the database of a new node.
        """
        if not new_database:
            check_database(settings)
        make_private(settings)
        database = Database(settings.database_url)
        audit = AuditLog(database, settings.keys_dir / AUDIT_KEY_FILE)
        return cls(settings, database, create_object_store(settings.objects_url), audit)

    @cached_property
    def keys(self) -> KeyPair:
        """The node's Crypt4GH key pair: everything at rest is encrypted to it."""
        return load_keypair(self.settings.keys_dir, NODE_KEY_NAME)

    @cached_property
    def tickets(self) -> TicketSigner:
        return TicketSigner.load_or_create(self.settings.keys_dir / "ticket.secret")

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
        keys = TrustedKeys([*settings.trusted_issuers, own], self.http, settings.passports.jwks_refetch_seconds)
        audiences = (settings.public_url, settings.node_id)
        return PassportVerifier(keys, settings.passports, node_issuer=self.issuer.issuer, audiences=audiences)

    @cached_property
    def http(self) -> httpx.Client:
        """The node's one HTTP client (issuers' keys, brokers): kept-alive connections, closed with the node."""
        return httpx.Client(timeout=10, follow_redirects=False)

    @cached_property
    def privacy(self) -> PrivacyGuard:
        """Beacon membership-inference defences, with their state in the metadata database."""
        return PrivacyGuard(SqlPrivacyState(self.database), linked_issuers=self.settings.linked_issuers)

    @cached_property
    def policy(self) -> AccessPolicy:
        return AccessPolicy(self.audit, self.database, self.settings.public_url)

    def close(self) -> None:
        if "http" in self.__dict__:
            self.__dict__.pop("http").close()
        self.database.dispose()


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
    """Create or complete a node's data directory; safe to run again on an existing one."""
    check_database(settings)
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
    values = settings.model_dump(mode="json", exclude={"data_dir"}, exclude_defaults=True)
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
