"""Beacon attack watch: where each member's questions first lay, and whether they have spread (issue 17).

Rows of an older node have no first position and are not spread: a member is judged by the positions of the
questions asked from the upgrade on (the first of them is taken as the first), or by ``span_free_hits``.

Revision ID: 0015
Revises: 0014
"""

from alembic import op
import sqlalchemy as sa


revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("privacy_watch_hits", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_chromosome", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("first_start", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("spread", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("privacy_watch_hits", schema=None) as batch_op:
        batch_op.drop_column("spread")
        batch_op.drop_column("first_start")
        batch_op.drop_column("first_chromosome")
