"""Database tables. API schemas live with each protocol; these are storage only.

Alembic migrations in ``migrations/versions`` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, ClassVar, NotRequired, TypedDict

from sqlalchemy import JSON, BigInteger, DateTime, Dialect, ForeignKey, Integer, String, Table, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A moment, always read back in UTC with its zone.

    SQLite keeps no zone: without this a row read back from it is naive, and the same timestamp is written
    with ``+00:00`` in the answer to the request that set it and without any zone in every later answer
    (not an RFC 3339 date-time).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return _in_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return _in_utc(value)


def _in_utc(value: datetime | None) -> datetime | None:
    """A naive value is one SQLite gave back (stored in UTC); an aware one is converted."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}

    if TYPE_CHECKING:
        # Every model here maps a Table (SQLAlchemy types it as any FromClause), so Core DML accepts it.
        __table__: ClassVar[Table]


class Dataset(Base):
    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    custodian: Mapped[str] = mapped_column(String(500))
    license: Mapped[str] = mapped_column(String(200), default="")
    #: public | registered | controlled
    access_level: Mapped[str] = mapped_column(String(16))
    #: Consent codes as written by the steward, e.g. ["GRU", "NPU", "DS:MONDO:0005015"].
    duo_codes: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Whether VCF sample names are replaced by pseudonyms on ingest (off only for already-public data).
    pseudonymise: Mapped[bool] = mapped_column(default=True)
    #: Actors (``subject@issuer``) who sit on this dataset's data access committee.
    committee: Mapped[list[str]] = mapped_column(JSON, default=list)
    #: Requests the DUO matcher fully permits are approved without waiting for the committee.
    auto_approve: Mapped[bool] = mapped_column(default=False)
    #: Beacon disclosure settings of this dataset (minimum counts, privacy budgets); see genoshare.access.
    beacon_policy: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    #: Files of this dataset are stored unencrypted and served straight from disk; public datasets only
    #: (``genoshare datasets create --access public --store-plaintext``), every other level refuses it.
    store_plaintext: Mapped[bool] = mapped_column(default=False)
    #: The data access agreement a researcher accepts with every request (text, or a URL and its terms); its
    #: sha256 is recorded with the request and the grant, so a later edit never changes what was accepted.
    data_access_agreement: Mapped[str] = mapped_column(Text, default="")
    #: How to cite the dataset in publications (shown in the catalogue and in every manifest).
    citation: Mapped[str] = mapped_column(Text, default="")
    #: Where the committee is mailed about new requests (a shared mailbox; members sign in by passport).
    committee_email: Mapped[str] = mapped_column(String(320), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DataObject(Base):
    """One published file. Rows appear only in the ingest's final transaction: visible means complete."""

    __tablename__ = "objects"
    __table_args__ = (
        UniqueConstraint("dataset_id", "source_sha256", name="uq_objects_dataset_source"),
        UniqueConstraint("htsget_id", "format", name="uq_objects_htsget_format"),
    )

    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    #: The id under which htsget serves this file (its name without format extensions).
    htsget_id: Mapped[str] = mapped_column(String(200), index=True)
    #: BAM | CRAM | VCF | BCF
    format: Mapped[str] = mapped_column(String(8))
    size: Mapped[int] = mapped_column(BigInteger)
    md5: Mapped[str] = mapped_column(String(32))
    sha256: Mapped[str] = mapped_column(String(64))
    #: Checksum of the file as the steward gave it, so that re-ingesting it is recognised as a no-op.
    source_sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(300))
    index_key: Mapped[str | None] = mapped_column(String(300), nullable=True)
    #: bai | csi | tbi | crai
    index_format: Mapped[str | None] = mapped_column(String(8), nullable=True)
    mime_type: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: available | rederiving (being rewritten without a withdrawn participant; not served meanwhile)
    status: Mapped[str] = mapped_column(String(16), default="available")


class ObjectParticipant(Base):
    """Whose data a file holds: VCF/BCF sample columns, BAM/CRAM read-group samples."""

    __tablename__ = "object_participants"

    object_id: Mapped[str] = mapped_column(ForeignKey("objects.id", ondelete="CASCADE"), primary_key=True)
    participant_id: Mapped[int] = mapped_column(
        ForeignKey("participants.id", ondelete="RESTRICT"), primary_key=True, index=True
    )


class Participant(Base):
    """A person in a dataset, known to the outside only by a pseudonym."""

    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("dataset_id", "source_key", name="uq_participants_source_key"),
        UniqueConstraint("dataset_id", "pseudonym", name="uq_participants_pseudonym"),
        UniqueConstraint("token_hash", name="uq_participants_token_hash"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"), index=True)
    pseudonym: Mapped[str] = mapped_column(String(64))
    #: A keyed hash of the sample name in the steward's file (``Pseudonymiser.source_key``), never the name: a
    #: copy of the database alone does not reveal the institution's ids. Never served by any API.
    source_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: active | withdrawn. A withdrawn person is left out of every answer.
    consent_status: Mapped[str] = mapped_column(String(16), default="active")
    #: Narrowings the participant added on top of the dataset's codes, as DUO codes (e.g. ["NCU"]).
    consent_restrictions: Mapped[list[str]] = mapped_column(JSON, default=list)
    consent_updated_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: sha256 of the participant's own access token (the secret link); the token itself is never stored.
    token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    #: The person's matchmaking choice (Matchmaker Exchange): True yes, False no, None not asked, when the
    #: dataset's consent codes decide (``genoshare.access.matchmaking``).
    matchmaking: Mapped[bool | None] = mapped_column(nullable=True)
    #: Shared by the rows of one person in several datasets: one consent link reaches all of them.
    person_key: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)


class CodeMatch(TypedDict):
    """One consent code's outcome in a stored DUO match (``MatchResult.to_dict``)."""

    code: str
    id: str
    label: str
    outcome: str
    reasons: list[str]


class ExcludedParticipant(TypedDict):
    """A participant whose own narrowing forbids the purpose: left out of the grant."""

    id: int
    participant: str
    reasons: list[str]


class DatasetMatch(TypedDict):
    """One dataset's entry in ``AccessRequest.match``: the JSON shown to the committee and read on approval."""

    outcome: str
    expires_on: str | None
    codes: list[CodeMatch]
    #: Missing from requests stored before narrowed consent was matched.
    excluded_participants: NotRequired[list[ExcludedParticipant]]


class DatasetDecision(TypedDict):
    """One dataset's decision in ``AccessRequest.decisions``."""

    #: approved | rejected | revoked
    status: str
    by: str
    at: str
    #: The reason of a rejection or revocation, or the note and conditions of an approval.
    note: str
    expires_at: NotRequired[str | None]


class AccessRequest(Base):
    """A researcher's request for datasets, with the purpose in DUO terms and the committee's decision."""

    __tablename__ = "access_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    requester: Mapped[str] = mapped_column(String(500), index=True)
    datasets: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[dict[str, object]] = mapped_column(JSON)
    project_title: Mapped[str] = mapped_column(String(500))
    institution: Mapped[str] = mapped_column(String(500))
    #: pending | approved | rejected | revoked
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    #: The DUO matcher's outcome and reasons per dataset, as shown to the committee.
    match: Mapped[dict[str, DatasetMatch]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(500), nullable=True)
    reason: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    #: The requester's country (ISO 3166-1 alpha-2) and sector, as declared with the request: the equity report.
    country: Mapped[str] = mapped_column(String(2), default="")
    #: academic | public | non-profit | clinical | commercial
    sector: Mapped[str] = mapped_column(String(32), default="")
    #: The requester's affiliation and role, from their passport's AffiliationAndRole visas.
    affiliation: Mapped[str] = mapped_column(String(500), default="")
    #: Where the requester is told of decisions, if they gave an address.
    contact_email: Mapped[str] = mapped_column(String(320), default="")
    #: Dataset -> sha256 of the data access agreement the requester accepted with this request.
    agreements: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    #: Dataset -> the committee's decision on it: each dataset of a request is decided on its own.
    decisions: Mapped[dict[str, DatasetDecision]] = mapped_column(JSON, default=dict)


class Grant(Base):
    """A ControlledAccessGrants visa this node signed; revoking the row stops every API at once."""

    __tablename__ = "grants"

    #: The visa's ``jti``.
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("access_requests.id", ondelete="RESTRICT"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"), index=True)
    grantee: Mapped[str] = mapped_column(String(500), index=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_by: Mapped[str | None] = mapped_column(String(500), nullable=True)
    #: Participants whose narrowed consent forbade this grant's purpose at approval (what the committee saw);
    #: what is served follows their consent of the day (``genoshare.access.consent``).
    excluded_participants: Mapped[list[int]] = mapped_column(JSON, default=list)
    #: The committee's note or conditions of use, shown to the grantee with the grant.
    note: Mapped[str] = mapped_column(Text, default="")
    #: sha256 of the data access agreement the grantee accepted (``Dataset.data_access_agreement`` then).
    agreement_sha256: Mapped[str] = mapped_column(String(64), default="")


class ClinicalAnnotation(Base):
    """One variant's clinical significance from a ClinVar-format VCF a steward loaded (``genoshare annotations``).

    Coordinates as in the VCF (1-based ``position``), the contig without a ``chr`` prefix, per assembly.
    """

    __tablename__ = "clinical_annotations"
    __table_args__ = (
        UniqueConstraint(
            "source", "assembly_id", "contig", "position", "ref", "alt", name="uq_clinical_annotations_allele"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: The file's source and release date (``##source``, ``##fileDate``), shown with every answer.
    source: Mapped[str] = mapped_column(String(100))
    source_date: Mapped[str] = mapped_column(String(32), default="")
    assembly_id: Mapped[str] = mapped_column(String(64))
    contig: Mapped[str] = mapped_column(String(64))
    position: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[str] = mapped_column(Text)
    alt: Mapped[str] = mapped_column(Text)
    #: The source's id of the variant (ClinVar's VariationID, the VCF ID column).
    variant_id: Mapped[str] = mapped_column(String(64), default="")
    gene: Mapped[str] = mapped_column(String(200), default="")
    significance: Mapped[str] = mapped_column(String(500), default="")
    conditions: Mapped[str] = mapped_column(Text, default="")
    review_status: Mapped[str] = mapped_column(String(200), default="")
    loaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One entry of the hash chain; ``hash``, an HMAC under the node's audit key, covers ``prev_hash`` and the rest."""

    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(500))
    action: Mapped[str] = mapped_column(String(100))
    resource: Mapped[str] = mapped_column(String(500))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The chain's tip, one row. Appends lock it, which serialises writers across processes."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class PortalSession(Base):
    """A web portal session: the cookie holds a random secret, the row only its sha256.

    A row per session makes every session revocable (sign-out, a steward, a withdrawn passport) and keeps
    its state (CSRF token, language, messages, the caller's passport encrypted under a key only the
    cookie's secret derives) on the server, where a stolen database row opens nothing.
    """

    __tablename__ = "portal_sessions"

    #: sha256 of the cookie's secret.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: visitor | passport | participant
    kind: Mapped[str] = mapped_column(String(16))
    #: Who the session is of (``subject@issuer``, ``participant:<pseudonym>``); empty for a visitor.
    actor: Mapped[str] = mapped_column(String(500), default="", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    data: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class RequestDocument(Base):
    """A document attached to an access request (ethics approval, signed agreement), Crypt4GH-encrypted at rest."""

    __tablename__ = "request_documents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("access_requests.id", ondelete="CASCADE"), index=True)
    #: The file name as uploaded (shown, never used as a path).
    name: Mapped[str] = mapped_column(String(255))
    media_type: Mapped[str] = mapped_column(String(100))
    #: Plaintext size and checksum.
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    blob_key: Mapped[str] = mapped_column(String(300))
    uploaded_by: Mapped[str] = mapped_column(String(500))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)


class PendingRemoval(Base):
    """Stored bytes a removal committed to deleting and has not deleted yet (the store failed, the process died).

    Written in the transaction that stops serving the data, and deleted once the bytes are gone, so that what a
    failure leaves behind is known: ``genoshare check`` reports it and ``genoshare objects sweep`` finishes it.
    """

    __tablename__ = "pending_removals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    #: An object-store key, or (``directory``) a Beacon index directory relative to the data directory.
    key: Mapped[str] = mapped_column(String(1024), index=True)
    #: ``object`` | ``directory``
    kind: Mapped[str] = mapped_column(String(16), default="object")
    #: The removal that left it: ``objects/<id>`` or ``datasets/<id>``.
    removal: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StoredObject(Base):
    """An object the node wrote to an S3 store, as the store acknowledged it (``genoshare.store.ledger``).

    Whoever else can write the bucket can put other bytes under a key; a read checks the object's ETag against
    the one recorded here before it sends a byte.
    """

    __tablename__ = "stored_objects"

    #: The object's key in the store (without the store's prefix).
    key: Mapped[str] = mapped_column(String(1024), primary_key=True)
    #: The ETag the store answered the upload with (quotes included, as S3 writes it).
    etag: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    stored_at: Mapped[datetime] = mapped_column(default=utcnow)
