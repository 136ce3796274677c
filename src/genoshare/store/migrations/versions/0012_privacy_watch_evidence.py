"""Beacon attack watch: the evidence per person and per member, beside the counts (issue 17).

Rows of an older node start at 0 evidence: a walk under way when the node was upgraded is weighed from its
next question on (its counts are kept).

Revision ID: 0012
Revises: 0011
"""

from alembic import op
import sqlalchemy as sa


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("privacy_watch", "privacy_watch_hits"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("evidence", sa.Double(), nullable=False, server_default="0"))


def downgrade() -> None:
    for table in ("privacy_watch_hits", "privacy_watch"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("evidence")
