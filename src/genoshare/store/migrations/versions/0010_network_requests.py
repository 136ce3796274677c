"""Beacon network: a researcher's access requests on other nodes, as those nodes last gave them.

Revision ID: 0010
Revises: 0009
"""

from alembic import op
import sqlalchemy as sa


revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "network_requests",
        sa.Column("requester", sa.String(length=500), nullable=False),
        sa.Column("node_url", sa.String(length=500), nullable=False),
        sa.Column("remote_id", sa.String(length=100), nullable=False),
        sa.Column("node_name", sa.String(length=500), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("requester", "node_url", "remote_id"),
    )


def downgrade() -> None:
    op.drop_table("network_requests")
