"""The composition root: one ``Node`` holds the configured pieces that services and APIs share.

Built from ``Settings`` by ``Node.open``; ``init_node`` creates a fresh data directory (config, keys,
schema, audit chain).  Nothing here is a module-level singleton, so a test can run several nodes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import tomli_w

from genoshare.access.issuer import VisaIssuer
from genoshare.access.passports import PassportVerifier, TrustedKeys
from genoshare.access.policy import AccessPolicy
from genoshare.access.privacy import PrivacyGuard
from genoshare.access.privacy_state import SqlPrivacyState
from genoshare.access.tickets import TicketSigner
from genoshare.audit import AuditLog
from genoshare.crypt.keys import KeyPair, generate_keypair, load_keypair
from genoshare.settings import CONFIG_FILE, Settings, TrustedIssuer
from genoshare.store.db import Database, migrate
from genoshare.store.objects import ObjectStore, create_object_store

NODE_KEY_NAME = "node"


@dataclass
class Node:
    settings: Settings
    database: Database
    objects: ObjectStore
    audit: AuditLog

    @classmethod
    def open(cls, settings: Settings) -> Node:
        database = Database(settings.database_url)
        return cls(settings, database, create_object_store(settings.objects_url), AuditLog(database))

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
        own = TrustedIssuer(issuer=self.issuer.issuer, jwks_file=self.issuer_jwks_file)
        return PassportVerifier(TrustedKeys([*self.settings.trusted_issuers, own]))

    @cached_property
    def privacy(self) -> PrivacyGuard:
        """Beacon membership-inference defences, with their state in the metadata database."""
        return PrivacyGuard(SqlPrivacyState(self.database), linked_issuers=self.settings.linked_issuers)

    @cached_property
    def policy(self) -> AccessPolicy:
        return AccessPolicy(self.audit, self.database, self.settings.public_url)

    def close(self) -> None:
        self.database.dispose()


def init_node(settings: Settings, *, write_config: bool = True) -> Node:
    """Create or complete a node's data directory; safe to run again on an existing one."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if write_config and not (settings.data_dir / CONFIG_FILE).exists():
        write_config_file(settings)
    keys_dir = settings.keys_dir
    keys_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not (keys_dir / f"{NODE_KEY_NAME}.sec").exists():
        generate_keypair(keys_dir, NODE_KEY_NAME)
    node = Node.open(settings)
    migrate(node.database.engine)
    node.audit.ensure_head()
    node.tickets  # noqa: B018 - creates the ticket secret now rather than on the first request
    node.issuer  # noqa: B018 - and the node's visa-signing key
    return node


def write_config_file(settings: Settings, path: Path | None = None) -> None:
    """Write the settings that differ from the embedded defaults, so the file documents the node."""
    values = settings.model_dump(mode="json", exclude={"data_dir"}, exclude_defaults=True)
    defaults = Settings(data_dir=settings.data_dir)
    for key in ("database_url", "objects_url"):
        if values.get(key) == getattr(defaults, key):
            values.pop(key)
    target = path or settings.data_dir / CONFIG_FILE
    target.write_text(
        "# genoshare node configuration; GENOSHARE_* environment variables override it.\n" + tomli_w.dumps(values)
    )
