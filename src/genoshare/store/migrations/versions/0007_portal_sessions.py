"""Web portal sessions, and documents attached to access requests.

Revision ID: 0007
Revises: 0006
"""

from alembic import op
import sqlalchemy as sa


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=500), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_portal_sessions_actor"), ["actor"], unique=False)
        batch_op.create_index(batch_op.f("ix_portal_sessions_expires_at"), ["expires_at"], unique=False)
    op.create_table(
        "request_documents",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("media_type", sa.String(length=100), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("blob_key", sa.String(length=300), nullable=False),
        sa.Column("uploaded_by", sa.String(length=500), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["request_id"], ["access_requests.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("request_documents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_documents_request_id"), ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("request_documents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_documents_request_id"))
    op.drop_table("request_documents")
    with op.batch_alter_table("portal_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_portal_sessions_expires_at"))
        batch_op.drop_index(batch_op.f("ix_portal_sessions_actor"))
    op.drop_table("portal_sessions")
