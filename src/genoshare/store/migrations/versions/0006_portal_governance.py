"""Dataset licence terms and citation, requester country and sector, per-dataset decisions, linked participants.

Revision ID: 0006
Revises: 0005
"""

from alembic import op
import sqlalchemy as sa


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("data_access_agreement", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("citation", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("committee_email", sa.String(length=320), nullable=False, server_default=""))
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("person_key", sa.String(length=36), nullable=True))
        batch_op.create_index(batch_op.f("ix_participants_person_key"), ["person_key"], unique=False)
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("country", sa.String(length=2), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("sector", sa.String(length=32), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("affiliation", sa.String(length=500), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("contact_email", sa.String(length=320), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("agreements", sa.JSON(), nullable=False, server_default="{}"))
        batch_op.add_column(sa.Column("decisions", sa.JSON(), nullable=False, server_default="{}"))
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("note", sa.Text(), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("agreement_sha256", sa.String(length=64), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_column("agreement_sha256")
        batch_op.drop_column("note")
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        for column in ("decisions", "agreements", "contact_email", "affiliation", "sector", "country"):
            batch_op.drop_column(column)
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_participants_person_key"))
        batch_op.drop_column("person_key")
    with op.batch_alter_table("datasets", schema=None) as batch_op:
        for column in ("committee_email", "citation", "data_access_agreement"):
            batch_op.drop_column(column)
