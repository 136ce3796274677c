"""Clinical use: participants' matchmaking choice and steward-loaded clinical significance (ClinVar VCF).

Revision ID: 0008
Revises: 0007
"""

from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("matchmaking", sa.Boolean(), nullable=True))
    op.create_table(
        "clinical_annotations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=100), nullable=False),
        sa.Column("source_date", sa.String(length=32), nullable=False),
        sa.Column("assembly_id", sa.String(length=64), nullable=False),
        sa.Column("contig", sa.String(length=64), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("ref", sa.Text(), nullable=False),
        sa.Column("alt", sa.Text(), nullable=False),
        sa.Column("variant_id", sa.String(length=64), nullable=False),
        sa.Column("gene", sa.String(length=200), nullable=False),
        sa.Column("significance", sa.String(length=500), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=False),
        sa.Column("review_status", sa.String(length=200), nullable=False),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "source", "assembly_id", "contig", "position", "ref", "alt", name="uq_clinical_annotations_allele"
        ),
    )


def downgrade() -> None:
    op.drop_table("clinical_annotations")
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.drop_column("matchmaking")
