"""Beacon v2: individuals and biosamples linked to VCF samples, built variant indexes, gene table.

Revision ID: 0003
Revises: 0002
"""

from alembic import op
import sqlalchemy as sa


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "beacon_genes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("assembly_id", sa.String(length=64), nullable=False),
        sa.Column("symbol", sa.String(length=64), nullable=False),
        sa.Column("gene_id", sa.String(length=64), nullable=False),
        sa.Column("contig", sa.String(length=64), nullable=False),
        sa.Column("start", sa.BigInteger(), nullable=False),
        sa.Column("end", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("assembly_id", "symbol", name="uq_beacon_genes_symbol"),
    )
    with op.batch_alter_table("beacon_genes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_beacon_genes_symbol"), ["symbol"], unique=False)

    op.create_table(
        "beacon_individuals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("pseudonym", sa.String(length=64), nullable=False),
        sa.Column("sample_number", sa.Integer(), nullable=False),
        sa.Column("sex", sa.String(length=32), nullable=False),
        sa.Column("age", sa.String(length=32), nullable=True),
        sa.Column("age_years", sa.Double(), nullable=True),
        sa.Column("phenotypic_features", sa.JSON(), nullable=False),
        sa.Column("diseases", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset_id", "pseudonym", name="uq_beacon_individuals_pseudonym"),
        sa.UniqueConstraint("dataset_id", "sample_number", name="uq_beacon_individuals_number"),
    )
    with op.batch_alter_table("beacon_individuals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_beacon_individuals_dataset_id"), ["dataset_id"], unique=False)

    op.create_table(
        "beacon_biosamples",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("biosample_id", sa.String(length=128), nullable=False),
        sa.Column("individual_id", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["individual_id"], ["beacon_individuals.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dataset_id", "biosample_id", name="uq_beacon_biosamples_id"),
    )
    with op.batch_alter_table("beacon_biosamples", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_beacon_biosamples_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_beacon_biosamples_individual_id"), ["individual_id"], unique=False)

    op.create_table(
        "beacon_variant_indexes",
        sa.Column("object_id", sa.String(length=300), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("assembly_id", sa.String(length=64), nullable=False),
        sa.Column("contigs", sa.JSON(), nullable=False),
        sa.Column("n_rows", sa.BigInteger(), nullable=False),
        sa.Column("n_samples", sa.Integer(), nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["object_id"], ["objects.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("object_id"),
    )
    with op.batch_alter_table("beacon_variant_indexes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_beacon_variant_indexes_dataset_id"), ["dataset_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("beacon_variant_indexes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_beacon_variant_indexes_dataset_id"))

    op.drop_table("beacon_variant_indexes")
    with op.batch_alter_table("beacon_biosamples", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_beacon_biosamples_individual_id"))
        batch_op.drop_index(batch_op.f("ix_beacon_biosamples_dataset_id"))

    op.drop_table("beacon_biosamples")
    with op.batch_alter_table("beacon_individuals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_beacon_individuals_dataset_id"))

    op.drop_table("beacon_individuals")
    with op.batch_alter_table("beacon_genes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_beacon_genes_symbol"))

    op.drop_table("beacon_genes")
