"""Beacon metadata tables: individuals and biosamples linked to VCF samples, and built variant indexes.

``beacon_individuals.sample_number`` is the person's bit in every carrier bitmap of the dataset, so it is
assigned once per (dataset, pseudonym) and never reused; the variant index is built with these numbers.
Consent lives in ``participants`` (governance owns it); the Beacon joins on the pseudonym.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from genoshare.store.models import Base, utcnow


class BeaconIndividual(Base):
    __tablename__ = "beacon_individuals"
    __table_args__ = (
        UniqueConstraint("dataset_id", "pseudonym", name="uq_beacon_individuals_pseudonym"),
        UniqueConstraint("dataset_id", "sample_number", name="uq_beacon_individuals_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"), index=True)
    #: The public id of the individual (the VCF sample name after de-identification).
    pseudonym: Mapped[str] = mapped_column(String(64))
    sample_number: Mapped[int] = mapped_column(Integer)
    #: NCIT sex CURIE; NCIT:C17998 (Unknown) until phenotypes are ingested.
    sex: Mapped[str] = mapped_column(String(32), default="NCIT:C17998")
    #: ISO 8601 duration (P61Y) as given, and in years for numeric filters.
    age: Mapped[str | None] = mapped_column(String(32), nullable=True)
    age_years: Mapped[float | None] = mapped_column(nullable=True)
    #: Beacon ``phenotypicFeatures`` and ``diseases`` items (ontologyTerm ids and labels).
    phenotypic_features: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    diseases: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class BeaconBiosample(Base):
    __tablename__ = "beacon_biosamples"
    __table_args__ = (UniqueConstraint("dataset_id", "biosample_id", name="uq_beacon_biosamples_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"), index=True)
    biosample_id: Mapped[str] = mapped_column(String(128))
    individual_id: Mapped[int] = mapped_column(ForeignKey("beacon_individuals.id", ondelete="CASCADE"), index=True)
    #: The Beacon biosample document apart from ids (sampleOriginType, biosampleStatus, collection...).
    document: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class BeaconVariantIndex(Base):
    """A built variant index for one published VCF/BCF object; the Beacon serves every row of this table."""

    __tablename__ = "beacon_variant_indexes"

    object_id: Mapped[str] = mapped_column(ForeignKey("objects.id", ondelete="CASCADE"), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id", ondelete="RESTRICT"), index=True)
    #: Directory holding the index files, relative to the node's data directory.
    path: Mapped[str] = mapped_column(String(500))
    assembly_id: Mapped[str] = mapped_column(String(64))
    contigs: Mapped[list[str]] = mapped_column(JSON, default=list)
    n_rows: Mapped[int] = mapped_column(BigInteger)
    n_samples: Mapped[int] = mapped_column(Integer)
    built_at: Mapped[datetime] = mapped_column(default=utcnow)


class BeaconGene(Base):
    """Gene coordinates for ``geneId`` queries, loaded from a GTF/GFF per assembly."""

    __tablename__ = "beacon_genes"
    __table_args__ = (UniqueConstraint("assembly_id", "symbol", name="uq_beacon_genes_symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    assembly_id: Mapped[str] = mapped_column(String(64))
    symbol: Mapped[str] = mapped_column(String(64), index=True)
    gene_id: Mapped[str] = mapped_column(String(64))
    contig: Mapped[str] = mapped_column(String(64))
    #: 0-based half-open, like Beacon coordinates.
    start: Mapped[int] = mapped_column(BigInteger)
    end: Mapped[int] = mapped_column(BigInteger)
