"""Pending removals: the stored bytes a file removal or dataset deletion has yet to delete.

Revision ID: 0013
Revises: 0012
"""

from alembic import op
import sqlalchemy as sa


revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pending_removals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("removal", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("pending_removals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pending_removals_key"), ["key"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("pending_removals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pending_removals_key"))
    op.drop_table("pending_removals")
