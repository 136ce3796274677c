"""Governance: access requests, node-issued grants, committees, participant consent, who is in which file.

Revision ID: 0002
Revises: 0001
"""

from alembic import op
import sqlalchemy as sa


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "access_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("requester", sa.String(length=500), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("purpose", sa.JSON(), nullable=False),
        sa.Column("project_title", sa.String(length=500), nullable=False),
        sa.Column("institution", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("match", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=500), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_access_requests_requester"), ["requester"], unique=False)
        batch_op.create_index(batch_op.f("ix_access_requests_status"), ["status"], unique=False)

    op.create_table(
        "grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.String(length=64), nullable=False),
        sa.Column("grantee", sa.String(length=500), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=500), nullable=True),
        sa.Column("excluded_participants", sa.JSON(), nullable=False, server_default="[]"),
        sa.ForeignKeyConstraint(["dataset_id"], ["datasets.id"], ondelete="RESTRICT"),
        sa.ForeignKeyConstraint(["request_id"], ["access_requests.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_grants_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_grants_grantee"), ["grantee"], unique=False)
        batch_op.create_index(batch_op.f("ix_grants_request_id"), ["request_id"], unique=False)

    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.add_column(sa.Column("committee", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("auto_approve", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("beacon_policy", sa.JSON(), nullable=False, server_default="{}"))

    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=16), nullable=False, server_default="available"))

    op.create_table(
        "object_participants",
        sa.Column("object_id", sa.String(length=300), nullable=False),
        sa.Column("participant_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["object_id"], ["objects.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["participant_id"], ["participants.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("object_id", "participant_id"),
    )
    with op.batch_alter_table("object_participants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_object_participants_participant_id"), ["participant_id"], unique=False)

    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("consent_status", sa.String(length=16), nullable=False, server_default="active"))
        batch_op.add_column(sa.Column("consent_restrictions", sa.JSON(), nullable=False, server_default="[]"))
        batch_op.add_column(sa.Column("consent_updated_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("token_hash", sa.String(length=64), nullable=True))
        batch_op.create_unique_constraint("uq_participants_token_hash", ["token_hash"])


def downgrade() -> None:
    with op.batch_alter_table("object_participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_object_participants_participant_id"))
    op.drop_table("object_participants")
    with op.batch_alter_table("objects", schema=None) as batch_op:
        batch_op.drop_column("status")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_constraint("uq_participants_token_hash", type_="unique")
        batch_op.drop_column("token_hash")
        batch_op.drop_column("consent_updated_at")
        batch_op.drop_column("consent_restrictions")
        batch_op.drop_column("consent_status")

    with op.batch_alter_table("datasets", schema=None) as batch_op:
        batch_op.drop_column("beacon_policy")
        batch_op.drop_column("auto_approve")
        batch_op.drop_column("committee")

    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_grants_request_id"))
        batch_op.drop_index(batch_op.f("ix_grants_grantee"))
        batch_op.drop_index(batch_op.f("ix_grants_dataset_id"))

    op.drop_table("grants")
    with op.batch_alter_table("access_requests", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_access_requests_status"))
        batch_op.drop_index(batch_op.f("ix_access_requests_requester"))

    op.drop_table("access_requests")
