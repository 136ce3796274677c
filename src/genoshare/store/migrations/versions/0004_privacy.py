"""Beacon privacy defences: account links, per-principal counters, budget spends, cached answers.

Revision ID: 0004
Revises: 0003
"""

from alembic import op
import sqlalchemy as sa


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_links",
        sa.Column("account", sa.String(length=500), nullable=False),
        sa.Column("principal", sa.String(length=500), nullable=False),
        sa.Column("linked_by", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account"),
    )
    with op.batch_alter_table("privacy_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_links_principal"), ["principal"], unique=False)

    op.create_table(
        "privacy_sessions",
        sa.Column("principal", sa.String(length=500), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("minute_window", sa.BigInteger(), nullable=False),
        sa.Column("minute_count", sa.Integer(), nullable=False),
        sa.Column("day_window", sa.BigInteger(), nullable=False),
        sa.Column("day_count", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("principal", "dataset_id"),
    )
    op.create_table(
        "privacy_spends",
        sa.Column("principal", sa.String(length=500), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("member", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("spent", sa.Double(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("principal", "dataset_id", "member"),
    )
    op.create_table(
        "privacy_answers",
        sa.Column("principal", sa.String(length=500), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("exists", sa.Boolean(), nullable=False),
        sa.Column("allele_count", sa.Integer(), nullable=True),
        sa.Column("carrier_count", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("principal", "dataset_id", "key_hash"),
    )


def downgrade() -> None:
    op.drop_table("privacy_answers")
    op.drop_table("privacy_spends")
    op.drop_table("privacy_sessions")
    with op.batch_alter_table("privacy_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_links_principal"))

    op.drop_table("privacy_links")
