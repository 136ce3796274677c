"""Node configuration: one TOML file in the data directory, overridden by ``GENOSHARE_*`` variables.

Precedence, highest first: arguments given in code (or CLI options), ``GENOSHARE_*`` environment variables,
the data directory's ``genoshare.toml``, the defaults.  Explicit arguments win so that a test's
``database_url=`` can never lose to an exported production URL.

Settings are built by ``load_settings`` and passed to ``create_app`` / the CLI commands; nothing reads
configuration at import time, so tests can run many nodes side by side in one process.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

CONFIG_FILE = "genoshare.toml"
#: The SQLite database a node keeps in its data directory when no ``database_url`` is configured.
DEFAULT_DATABASE_FILE = "genoshare.db"


#: The Registered Access bona fide researcher standard (GA4GH Passport, "Registered Access").
BONA_FIDE_RESEARCHER = "https://doi.org/10.1038/s41431-018-0219-y"
#: The Passport's fixed vocabulary for a visa's ``by``; a visa without ``by`` is "unknown" and never counts.
By = Literal["self", "peer", "system", "so", "dac"]
#: In ``issuers``, ``sources`` and ``values``: any.
ANY = "*"


class TrustedIssuer(BaseModel):
    """A passport broker or visa issuer whose signatures this node accepts.

    Its keys come from ``jwks_url`` or ``jwks_file``, or else from its OIDC discovery document
    (``<issuer>/.well-known/openid-configuration``). A ``broker`` is an OIDC provider whose access tokens this
    node also accepts (GA4GH AAI 1.2, Passport Clearinghouse): it fetches the visas from the broker's
    UserInfo endpoint, or, given this node's own client credentials at the broker, exchanges the token for a
    passport at the broker's token endpoint (RFC 8693), which the AAI profile prefers.
    """

    model_config = ConfigDict(extra="forbid")

    #: The issuer's URL, exactly as its tokens' ``iss`` reads.
    issuer: str
    #: Where its signing keys (a JWKS) are fetched; default: from its OIDC discovery document.
    jwks_url: str | None = None
    #: A file holding its JWKS instead (an issuer that publishes none, or a node offline).
    jwks_file: Path | None = None
    #: Its access tokens are passports too: an OIDC provider this node asks for the visas (AAI 1.2).
    broker: bool = False
    #: Override what the discovery document says.
    userinfo_url: str | None = None
    token_url: str | None = None
    #: This node's OAuth client at the broker: enables token exchange, and is an accepted ``aud``.
    client_id: str | None = None
    #: A file holding the client secret (kept out of genoshare.toml).
    client_secret_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> TrustedIssuer:
        if self.jwks_url is not None and self.jwks_file is not None:
            raise ValueError(f"trusted issuer {self.issuer!r}: give at most one of jwks_url or jwks_file")
        if (self.client_id is None) != (self.client_secret_file is None):
            raise ValueError(f"trusted issuer {self.issuer!r}: give both client_id and client_secret_file, or neither")
        if (self.client_id or self.userinfo_url or self.token_url) and not self.broker:
            raise ValueError(f"trusted issuer {self.issuer!r}: client and endpoint settings are for brokers only")
        return self


class VisaTypePolicy(BaseModel):
    """Which visas of one type count here: their ``by``, visa issuer (``iss``), ``source`` and ``value``.

    A visa of the type that fails any of these is dropped with a reason, as if it were not in the passport.
    """

    model_config = ConfigDict(extra="forbid")

    #: Who may have asserted the visa: ``self``, ``peer``, ``system``, ``so`` (signing official), ``dac``.
    by: list[By]
    #: Visa issuers (``iss``) whose visas of this type count; ``*``: any trusted issuer.
    issuers: list[str] = [ANY]
    #: Visa ``source`` values that count; ``*``: any.
    sources: list[str] = [ANY]
    #: Visa ``value`` values that count; ``*``: any.
    values: list[str] = [ANY]


class ResearcherStatusPolicy(VisaTypePolicy):
    """Which ResearcherStatus visas make a registered researcher.

    Default: the Registered Access bona fide status, asserted by a signing official, an institution's
    system or a peer (another bona fide researcher), from any trusted issuer; never self-asserted.
    """

    by: list[By] = ["so", "system", "peer"]
    values: list[str] = [BONA_FIDE_RESEARCHER]


class ControlledAccessGrantsPolicy(VisaTypePolicy):
    """Which ControlledAccessGrants visas grant access to this node's datasets.

    Default: only this node's own access committees (issuer and source: the node's ``public_url``), by
    ``dac``. List the issuers and sources (the DACs) of other grants to accept them too; the value must name
    a dataset of this node (``<public_url>/datasets/<id>``) either way.
    """

    by: list[By] = ["dac"]
    issuers: list[str] = []
    sources: list[str] = []


class PassportSettings(BaseModel):
    """How passports, visas and broker access tokens are checked (GA4GH AAI 1.2.1 / Passport 1.2.1)."""

    model_config = ConfigDict(extra="forbid")

    researcher_status: ResearcherStatusPolicy = Field(default_factory=ResearcherStatusPolicy)
    controlled_access_grants: ControlledAccessGrantsPolicy = Field(default_factory=ControlledAccessGrantsPolicy)
    #: Accepted ``aud`` values besides the node's ``public_url`` and ``node_id``; a token without ``aud`` passes.
    audiences: list[str] = Field(default_factory=list)
    #: Clock skew tolerated for ``exp``, ``nbf``, ``iat`` and ``asserted``.
    leeway_seconds: int = Field(default=60, ge=0, le=600)
    #: An unknown ``kid`` refetches the issuer's keys, at most once per this many seconds per issuer.
    jwks_refetch_seconds: float = Field(default=10, ge=0, le=3600)


class Account(BaseModel):
    """One person's account at one passport issuer: the ``sub`` and ``iss`` their passports carry."""

    model_config = ConfigDict(extra="forbid")

    #: The person's ``sub`` at the issuer.
    subject: str = Field(min_length=1)
    #: The issuer (``iss``) of their passports; one of ``trusted_issuers``.
    issuer: str = Field(min_length=1)


class RoleSettings(BaseModel):
    """Roles this node gives by configuration, beyond what passports assert (``genoshare.access.roles``)."""

    model_config = ConfigDict(extra="forbid")

    #: The node's data stewards: they see every access request, decide for every access committee and read
    #: every dataset's usage report. The node's operator at its own command line is one without being listed.
    stewards: list[Account] = Field(default_factory=list)


class SmtpSettings(BaseModel):
    """The mail server that tells committees of new requests and requesters of decisions."""

    model_config = ConfigDict(extra="forbid")

    #: The mail server's host name and port.
    host: str = Field(min_length=1)
    port: int = Field(default=25, ge=1, le=65535)
    #: The From: address of every notice.
    sender: str = Field(min_length=3)
    #: SMTP AUTH, with the password in a file (kept out of genoshare.toml); STARTTLS before authenticating.
    username: str | None = None
    password_file: Path | None = None
    starttls: bool = False
    #: Seconds a notice may take to send before it is given up (and logged).
    timeout_seconds: float = Field(default=10, gt=0, le=120)


class WebhookSettings(BaseModel):
    """A URL that receives every notice as a JSON POST signed with HMAC-SHA256 under a shared secret."""

    model_config = ConfigDict(extra="forbid")

    #: The URL notices are posted to.
    url: str = Field(pattern=r"^https?://")
    #: A file holding the shared secret (kept out of genoshare.toml).
    secret_file: Path
    #: Seconds a post may take before it is given up (and logged).
    timeout_seconds: float = Field(default=10, gt=0, le=120)


class NotifySettings(BaseModel):
    """Where new access requests and decisions are announced; both are optional."""

    model_config = ConfigDict(extra="forbid")

    smtp: SmtpSettings | None = None
    webhook: WebhookSettings | None = None


def _http_url(value: str) -> str:
    if not value.startswith(("http://", "https://")) or len(value.split("://", 1)[1].strip("/")) == 0:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value.rstrip("/")


class Peer(BaseModel):
    """Another node of this node's Beacon network (``[[network.peers]]``; ``genoshare network add``).

    ``url`` is the peer's ``public_url``: its Beacon is at ``<url>/api`` unless ``beacon_url`` says otherwise,
    and it signs its visas as issuer ``url``. ``trusts`` lists the passport issuers the peer accepts: a caller's
    passport is sent to the peer only when its issuer is listed, so a peer never sees a token it cannot use.
    ``trust_grants`` makes this node accept passports the peer signs, and its ControlledAccessGrants visas for
    the peer's own datasets (``<url>/datasets/...``), and nothing else it signs (``genoshare.access.passports``).
    """

    model_config = ConfigDict(extra="forbid")

    #: The peer's ``public_url`` (its visa issuer).
    url: str
    #: The peer's name in network answers; default: what its Beacon says.
    name: str = ""
    #: The peer's Beacon, if not ``<url>/api``.
    beacon_url: str | None = None
    #: Passport issuers the peer accepts: only passports of these are sent to it.
    trusts: list[str] = Field(default_factory=list)
    #: Accept passports the peer signs and its grants for its own datasets.
    trust_grants: bool = False
    #: This peer's deadline, if not the network's.
    deadline_seconds: float | None = Field(default=None, gt=0, le=60)

    @field_validator("url", "beacon_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _http_url(value)


class ServiceRegistry(BaseModel):
    """A GA4GH Service Registry whose Beacons (``GET <url>/services``) join this node's network as peers.

    A registry does not say which passport issuers its Beacons accept: ``trusts`` does, for all of them.
    """

    model_config = ConfigDict(extra="forbid")

    #: The registry's base URL (its Beacons: ``GET <url>/services``).
    url: str
    #: Passport issuers all of the registry's Beacons accept.
    trusts: list[str] = Field(default_factory=list)
    #: Its Beacons may be on loopback or private addresses (this institution's own network). Off, a Beacon it
    #: lists there, by address or by a name resolving there, is not asked: a registry is not the operator.
    private_networks: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _http_url(value)


class NetworkSettings(BaseModel):
    """The Beacon network this node asks on ``/network/api/...`` (docs/network.md)."""

    model_config = ConfigDict(extra="forbid")

    peers: list[Peer] = Field(default_factory=list)
    registries: list[ServiceRegistry] = Field(default_factory=list)
    #: How long a network answer waits for each peer; a peer slower than this is named, not waited for.
    deadline_seconds: float = Field(default=3.0, gt=0, le=60)
    #: How long a write to a peer (an access request forwarded to it) is waited for: a peer makes the request,
    #: matches it and may approve it before it answers, and an answer not waited for leaves the researcher
    #: not knowing whether the request was made.
    write_deadline_seconds: float = Field(default=20.0, gt=0, le=300)
    #: How often the registries' lists of Beacons are read again.
    registry_refresh_seconds: float = Field(default=300, ge=1, le=86400)
    #: Network answers one client address may have in progress at once (each asks every peer); more: 429.
    max_queries_per_caller: int = Field(default=4, ge=1, le=1000)


class PortalSettings(BaseModel):
    """The web portal (``genoshare.portal``): how people sign in, and how long a session lasts.

    Researchers and committee members sign in at an OpenID Connect provider that issues GA4GH passports (a
    passport broker, e.g. LS Login): authorization-code flow with PKCE, as this node's OAuth client there.
    The broker must also be a trusted issuer with ``broker = true``, so that its access tokens are passports.
    """

    model_config = ConfigDict(extra="forbid")

    #: The broker's issuer URL (its discovery document is ``<issuer>/.well-known/openid-configuration``).
    oidc_issuer: str | None = None
    #: The portal's OAuth client id at the broker.
    oidc_client_id: str | None = None
    #: A file holding the client secret (kept out of genoshare.toml); none for a public client (PKCE only).
    oidc_client_secret_file: Path | None = None
    #: The scopes the portal asks the broker for.
    oidc_scope: str = "openid ga4gh_passport_v1"
    #: A signed-in session ends after this many hours, or earlier with the passport it holds.
    session_hours: float = Field(default=8, gt=0, le=24 * 30)

    @model_validator(mode="after")
    def _client_with_issuer(self) -> PortalSettings:
        if (self.oidc_issuer is None) != (self.oidc_client_id is None):
            raise ValueError("portal: give both oidc_issuer and oidc_client_id, or neither")
        return self


class MatchmakerPeer(BaseModel):
    """Another Matchmaker Exchange node, as the MME join protocol sets it up (one per peer, both ways).

    ``token_sha256`` is the SHA-256 (hex) of the ``X-Auth-Token`` the peer sends here: only the hash is kept
    in the configuration, and without it the peer may not query this node. ``base_url`` (the peer appends
    nothing; this node appends ``/match``) and ``token_file`` (the token the peer gave this node, kept out of
    genoshare.toml) let this node send match requests to the peer.
    """

    model_config = ConfigDict(extra="forbid")

    #: The peer's name in answers and the audit log.
    name: str = Field(min_length=1, max_length=255)
    #: SHA-256 (hex) of the ``X-Auth-Token`` the peer sends here; without it the peer may not query this node.
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    #: The peer's MME base URL, to send it match requests (with ``token_file``).
    base_url: str | None = None
    #: A file holding the token the peer gave this node (kept out of genoshare.toml).
    token_file: Path | None = None
    #: Seconds this node waits for the peer's answer before reporting it as timed out.
    deadline_seconds: float = Field(default=10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _both_or_neither(self) -> MatchmakerPeer:
        if (self.base_url is None) != (self.token_file is None):
            raise ValueError(f"matchmaking peer {self.name!r}: give both base_url and token_file, or neither")
        return self


class MatchmakerSettings(BaseModel):
    """Rare-disease matchmaking (Matchmaker Exchange API 1.1): peers, the contact answers give, scoring limits."""

    model_config = ConfigDict(extra="forbid")

    peers: list[MatchmakerPeer] = Field(default_factory=list)
    #: Where a clinician whose patient matched follows up (MME ``contact.href``: a contact form or mailto:
    #: URL); default: the node's ``public_url``. The name is the dataset's custodian.
    contact_href: str | None = Field(default=None, pattern=r"^(https?|mailto):\S+$")
    #: The e-mail address given with ``contact_href`` in every match this node returns.
    contact_email: str | None = None
    #: A variant is rare (counts towards gene overlap) at or below this allele frequency in its dataset.
    rare_allele_frequency: float = Field(default=0.01, gt=0, le=1)
    #: At most this many matches per answer, best first; none scoring below ``min_score``.
    max_results: int = Field(default=10, ge=1, le=100)
    min_score: float = Field(default=0.1, ge=0, le=1)
    #: The ``disclaimer`` of this node's MME answers.
    disclaimer: str | None = None


class ClinicalSettings(BaseModel):
    """Clinical variant lookup (docs/clinical.md): the reference genome HGVS indels and VRS ids need."""

    model_config = ConfigDict(extra="forbid")

    #: A FASTA of the reference genome (plain or bgzipped, with its ``.fai``; ``samtools faidx``). With it,
    #: HGVS deletions, insertions and duplications are read (left-aligned to VCF), reference alleles are
    #: checked, and the lookup gives each variant's GA4GH VRS allele id; without it they are refused.
    reference_fasta: Path | None = None
    #: The assembly of ``reference_fasta``.
    reference_assembly: Literal["GRCh37", "GRCh38"] = "GRCh38"


class DatabaseSettings(BaseModel):
    """How each process of the node uses its metadata database (``database_url``): its connection pool.

    Every ``genoshare serve`` process (and each of its ``--workers``) keeps its own pool, so PostgreSQL sees
    up to ``processes x (pool_size + max_overflow)`` connections from the node; keep that under the server's
    ``max_connections`` (100 by default), or raise it (docs/scale.md).
    """

    model_config = ConfigDict(extra="forbid")

    #: Connections each process keeps open. A request holds one only while it reads or writes (not while it
    #: streams or waits on a client), so a few serve many concurrent requests.
    pool_size: int = Field(default=5, ge=1, le=1000)
    #: Connections opened beyond ``pool_size`` in a burst, closed again when returned.
    max_overflow: int = Field(default=10, ge=0, le=1000)
    #: Seconds a request waits for a free connection when all are in use; then it is answered 503.
    pool_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: Connections older than this are replaced (a proxy or firewall may cut ones it thinks idle); PostgreSQL.
    pool_recycle_seconds: int = Field(default=1800, ge=1, le=86400)
    #: Test a PostgreSQL connection as it is taken from the pool (a round trip) when it may have gone: the
    #: server closed it or said something unasked on it (a restart), or it sat idle for a second or more;
    #: a restarted database server then costs no failed request. Off: the first request on a connection the
    #: server dropped fails (once: the pool drops every connection on the first such error).
    pre_ping: bool = True
    #: On PostgreSQL, wait for the disk (``synchronous_commit``) when a Beacon answer writes the privacy state
    #: (budgets spent, the answer kept). Off (default): the durability SQLite in WAL mode gives everything;
    #: a crash of the database server may lose the last fraction of a second of spends. On: a disk flush per
    #: answer (1-6 ms measured on a shared development disk, more than the rest of the answer).
    privacy_writes_wait_for_disk: bool = False


class S3Settings(BaseModel):
    """How the node reaches an S3-compatible object store (``objects_url = "s3://bucket/prefix"``).

    Credentials left unset come from boto3's usual chain (``AWS_*`` variables, a profile, an instance
    role); set them here or as ``GENOSHARE_S3__ACCESS_KEY_ID`` / ``GENOSHARE_S3__SECRET_ACCESS_KEY``.
    They are never logged, nor shown in an error (``SecretStr``).
    """

    model_config = ConfigDict(extra="forbid")

    #: The store's URL, e.g. ``https://s3.eu-central-1.amazonaws.com`` or a MinIO/Ceph gateway; AWS's default if unset.
    endpoint_url: str | None = None
    #: The store's region (``us-east-1`` for most self-hosted gateways).
    region: str | None = None
    #: The node's access key id; unset: boto3's chain (``AWS_*`` variables, profile, instance role).
    access_key_id: str | None = None
    #: Its secret: set it in the environment (never written to ``genoshare.toml``, never logged).
    secret_access_key: SecretStr | None = None
    #: A temporary credential's session token, if the key is one (environment only, like the secret).
    session_token: SecretStr | None = None
    #: ``path`` (``endpoint/bucket/key``: what most self-hosted gateways want) or ``virtual`` (``bucket.endpoint``).
    addressing_style: Literal["path", "virtual", "auto"] = "path"
    #: Connections kept open to the store, shared by every thread of the process (a ranged GET each read).
    max_connections: int = Field(default=32, ge=1, le=1024)
    #: Seconds to open a connection to the store; an unreachable store answers 503 after this (and 2 retries).
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    #: Seconds the store may take to answer one request.
    read_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: Local scratch for staging uploads and cached index files; default: ``scratch`` in the data directory.
    scratch_dir: Path | None = None


class SparkSettings(BaseModel):
    """Apache Spark for ``genoshare ingest --engine spark``: the Beacon variant index built region by region.

    The node's data and scratch directories must be at the same path on every worker (a shared file
    system), and every worker's Python must have genoshare installed (docs/scale.md).
    """

    model_config = ConfigDict(extra="forbid")

    #: The cluster's master URL (``spark://host:7077``, ``yarn``, ``k8s://https://...``), or ``local[N]``: N
    #: worker threads in one JVM on this machine (``local[*]``: one per core).
    master: str = "local[*]"
    #: About this many VCF records per task: a contig with more is cut into position ranges (by its index's
    #: record count, over the positions its records span).
    records_per_task: int = Field(default=200_000, ge=1, le=1_000_000_000)
    #: Further Spark properties as they are, e.g. ``"spark.executor.memory" = "8g"``.
    conf: dict[str, str] = Field(default_factory=dict)


class CorsSettings(BaseModel):
    """Which web pages (origins) a browser lets read this node's answers (CORS), per group of routes.

    Off by default: no origin is allowed. Passports travel in ``Authorization`` headers, never cookies, so no
    route group allows credentials.
    """

    model_config = ConfigDict(extra="forbid")

    #: Origins whose pages may query the Beacon (``/api``), e.g. ``https://beacon-ui.example.org``; ``*``: any.
    beacon: list[str] = Field(default_factory=list)
    #: Origins whose pages may read htsget tickets and ``/data`` (igv.js in a browser).
    htsget: list[str] = Field(default_factory=list)
    #: Origins whose pages may call DRS (``/ga4gh/drs/v1``).
    drs: list[str] = Field(default_factory=list)

    @field_validator("beacon", "htsget", "drs")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin != ANY and (not origin.startswith(("http://", "https://")) or origin.count("/") != 2):
                raise ValueError(f"not an origin (scheme://host[:port], no path) nor *: {origin!r}")
        return origins


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GENOSHARE_", env_nested_delimiter="__", extra="forbid")

    #: The node's directory: configuration, keys, and (by default) its SQLite database and objects.
    data_dir: Path
    #: SQLAlchemy URL of the metadata database, e.g. ``postgresql+psycopg://genoshare@db.example.org/genoshare``
    #: (the password in a ``~/.pgpass`` file or the URL); default: SQLite ``genoshare.db`` in the data directory.
    database_url: str = ""
    #: The connection pool of each process (``DatabaseSettings``).
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    #: Where encrypted files are stored: a ``file://`` URL, or ``s3://bucket/prefix`` with ``[s3]`` settings;
    #: default: ``objects`` in the data directory.
    objects_url: str = ""
    s3: S3Settings = Field(default_factory=S3Settings)
    #: How ``genoshare ingest`` and ``beacon-index`` build the Beacon variant index: ``embedded`` (in their own
    #: process) or ``spark`` (on the ``[spark]`` cluster); same files either way, ``--engine`` chooses per run.
    #: A re-derivation after a withdrawal builds in the serving process whatever this says.
    ingest_engine: Literal["embedded", "spark"] = "embedded"
    spark: SparkSettings = Field(default_factory=SparkSettings)
    #: MiB of record batches a server process keeps between queries for all the Beacon variant indexes it
    #: serves, least recently used first out. Indexes on local disk are memory-mapped, so what it keeps is
    #: mostly views of the page cache; indexes in S3 (or in the Parquet layout of older nodes) keep what they read.
    beacon_index_cache_mb: int = Field(default=256, ge=1, le=1024 * 1024)
    #: Where clients reach this node, with any path prefix a proxy adds; used in DRS self_uri, access URLs and
    #: htsget tickets.
    public_url: str = "http://127.0.0.1:8080"
    #: The node's GA4GH service-info id, reverse domain name style (e.g. ``org.example-hospital.genoshare``).
    node_id: str = "org.example.genoshare"
    #: The node's name in service-info and Beacon info.
    node_name: str = "genoshare node"
    #: The institution running the node, as service-info and Beacon info announce it.
    organization: str = "Example Institute"
    #: ``dev``, ``test`` or ``prod`` (``production`` is read as ``prod``): a production node refuses to start on
    #: unsafe settings (``genoshare check``).
    environment: Literal["dev", "test", "prod"] = "dev"
    #: Passport brokers and visa issuers whose signatures this node accepts (``[[trusted_issuers]]``).
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    #: Which visas count, and how tokens are checked.
    passports: PassportSettings = Field(default_factory=PassportSettings)
    #: Lifetime of the signed data URLs handed out by DRS and htsget.
    ticket_ttl_seconds: int = Field(default=300, ge=10, le=86400)
    #: The most ids one DRS bulk request may ask for (``POST /objects``); more is answered 413.
    max_bulk_request_length: int = Field(default=100, ge=1, le=10000)
    #: How often a ``/data`` download asks again whether its ticket still opens the object: a revocation,
    #: a withdrawal or the ticket's expiry cuts even a single long GET within this many seconds.
    stream_recheck_seconds: float = Field(default=2.0, gt=0, le=60)
    #: The longest a ``/data`` download may wait for its client to take more bytes before it is cut: a client
    #: that stops reading would otherwise hold its connection and a few MiB of buffers for as long as it likes.
    send_timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    #: HTTP server limits of ``genoshare serve`` (``genoshare.api.server``; README, "server limits"): the most a
    #: request line and headers may take (a passport with many visas fits; more is answered 431), ...
    max_header_bytes: int = Field(default=64 * 1024, ge=8 * 1024, le=16 * 1024 * 1024)
    #: ... the most a request body may take (DRS and htsget bodies are JSON; a few passports fit; more: 413), ...
    max_body_bytes: int = Field(default=1024 * 1024, ge=64 * 1024, le=1024 * 1024 * 1024)
    #: ... the seconds a client has to send its whole request (line, headers, body) once it connects or its
    #: previous response ended (slowloris, slow bodies), ...
    request_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    #: ... the open connections (past it, the one waiting longest for its request is dropped, or the new one
    #: answered 503 when all are busy), and the seconds an idle keep-alive connection is kept.
    max_connections: int = Field(default=1000, ge=2, le=1_000_000)
    keep_alive_seconds: int = Field(default=5, ge=1, le=600)
    #: Groups of passport issuers that are one login service: a person's accounts at them share one
    #: Beacon privacy budget (``genoshare.access.privacy``).
    linked_issuers: list[list[str]] = Field(default_factory=list)
    #: Passport issuers trusted to link identities at other issuers in LinkedIdentities visas (an ORCID, a
    #: verified e-mail, another login service): brokers that verify what they link. Another issuer's visa
    #: links only accounts at that issuer, so it cannot merge a stranger's privacy budget into someone's.
    identity_link_issuers: list[str] = Field(default_factory=list)
    #: Matchmaker Exchange peers and matching limits (``genoshare.clinical``, docs/clinical.md).
    mme: MatchmakerSettings = Field(default_factory=MatchmakerSettings)
    #: The clinical variant lookup's reference genome (``ClinicalSettings``).
    clinical: ClinicalSettings = Field(default_factory=ClinicalSettings)
    #: Other nodes this node asks on ``/network/api/...`` and whose grants it may trust (``NetworkSettings``).
    network: NetworkSettings = Field(default_factory=NetworkSettings)
    roles: RoleSettings = Field(default_factory=RoleSettings)
    portal: PortalSettings = Field(default_factory=PortalSettings)
    notify: NotifySettings = Field(default_factory=NotifySettings)
    #: Cross-origin access for web pages, per route group (``CorsSettings``); off by default.
    cors: CorsSettings = Field(default_factory=CorsSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Operators override the file without editing it; code and CLI options override both.
        return init_settings, env_settings, ConfigFileSource(settings_cls)

    @field_validator("environment", mode="before")
    @classmethod
    def _production_is_prod(cls, value: object) -> object:
        return "prod" if value == "production" else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value:
            try:
                url = make_url(value)
            except ArgumentError as error:
                raise ValueError(f"not a database URL (e.g. postgresql+psycopg://user@host/db): {error}") from None
            if url.drivername in ("postgres", "postgresql", "postgresql+psycopg2"):
                fixed = url.set(drivername="postgresql+psycopg").render_as_string(hide_password=True)
                raise ValueError(f"write {fixed}: genoshare talks to PostgreSQL through psycopg 3")
            if url.get_backend_name() not in ("sqlite", "postgresql"):
                raise ValueError(f"{url.drivername}: genoshare runs on PostgreSQL (postgresql+psycopg://) or SQLite")
        return value

    @field_validator("public_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _stewards_at_trusted_issuers(self) -> Settings:
        """A steward must sign in through an issuer this node trusts, never through the node's own passports.

        The node signs a passport for whoever holds its grants, under the subject they had at their own
        issuer: a steward named at the node's issuer could be anyone whose subject reads the same.
        """
        trusted = {issuer.issuer for issuer in self.trusted_issuers} - {self.public_url}
        for steward in self.roles.stewards:
            if steward.issuer not in trusted:
                raise ValueError(
                    f"roles.stewards: {steward.subject!r} at {steward.issuer!r}: name an issuer from trusted_issuers"
                )
        return self

    @model_validator(mode="after")
    def _defaults_in_data_dir(self) -> Settings:
        self.data_dir = self.data_dir.resolve()
        if not self.database_url:
            self.database_url = self.default_database_url
        if not self.objects_url:
            self.objects_url = self.default_objects_url
        return self

    @property
    def default_database_url(self) -> str:
        return f"sqlite:///{self.data_dir / DEFAULT_DATABASE_FILE}"

    @property
    def default_objects_url(self) -> str:
        return (self.data_dir / "objects").as_uri()

    @property
    def production(self) -> bool:
        return self.environment == "prod"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def public_host(self) -> str:
        """Host (and port) part of ``public_url``, as DRS URIs ``drs://host/id`` want it."""
        return self.public_url.split("://", 1)[-1].split("/", 1)[0]


class ConfigFileSource(PydanticBaseSettingsSource):
    """``genoshare.toml`` of the data directory named by the sources above it (arguments or environment)."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: ``__call__`` reads the whole file at once.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        data_dir = self.current_state.get("data_dir")
        config = Path(data_dir) / CONFIG_FILE if data_dir is not None else None
        if config is None or not config.is_file():
            return {}
        with config.open("rb") as handle:
            return tomllib.load(handle)


def load_settings(data_dir: Path | str | None = None, **overrides: Any) -> Settings:
    """Settings for the node in ``data_dir`` (default: ``$GENOSHARE_DATA_DIR`` or ``./node``)."""
    directory = Path(data_dir or os.environ.get("GENOSHARE_DATA_DIR") or "node")
    return Settings(**{**overrides, "data_dir": directory})
