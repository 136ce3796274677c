"""Database tables. API schemas live with each protocol; these are storage only.

Alembic migrations in ``migrations/versions`` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, BigInteger, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: DateTime(timezone=True)}


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


class Participant(Base):
    """A person in a dataset, known to the outside only by a pseudonym."""

    __tablename__ = "participants"
    __table_args__ = (
        UniqueConstraint("dataset_id", "source_name", name="uq_participants_source"),
        UniqueConstraint("dataset_id", "pseudonym", name="uq_participants_pseudonym"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"), index=True)
    pseudonym: Mapped[str] = mapped_column(String(64))
    #: The sample name in the steward's file. Never served by any API.
    source_name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """One entry of the hash chain; ``hash`` covers ``prev_hash`` and every other column."""

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
