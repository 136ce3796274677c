"""Beacon attack watch: per person and dataset, rare questions counted, per-member hits, and the flag.

Revision ID: 0009
Revises: 0008
"""

from alembic import op
import sqlalchemy as sa


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "privacy_watch",
        sa.Column("principal", sa.String(length=500), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("rare_questions", sa.Integer(), nullable=False),
        sa.Column("flagged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("account", sa.String(length=500), nullable=True),
        sa.Column("top_hits", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=1000), nullable=True),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("principal", "dataset_id"),
    )
    with op.batch_alter_table("privacy_watch", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_privacy_watch_flagged_at"), ["flagged_at"], unique=False)
    op.create_table(
        "privacy_watch_hits",
        sa.Column("principal", sa.String(length=500), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("member", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("principal", "dataset_id", "member"),
    )


def downgrade() -> None:
    op.drop_table("privacy_watch_hits")
    with op.batch_alter_table("privacy_watch", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_privacy_watch_flagged_at"))
    op.drop_table("privacy_watch")
