"""Participants: the steward's sample name replaced by a keyed hash of it (a database copy reveals no source id).

Rows of an older node are converted with the node's pseudonym key, which ``genoshare db upgrade`` hands over
(``source_key`` in the Alembic config's attributes); the names are gone from the table afterwards, and
``migrate`` compacts the database so that no freed page keeps them either.

Revision ID: 0011
Revises: 0010
"""

from alembic import op
import sqlalchemy as sa

from genoshare.errors import InvalidInput


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

participants = sa.table(
    "participants",
    sa.column("id", sa.Integer),
    sa.column("dataset_id", sa.String),
    sa.column("source_name", sa.String),
    sa.column("source_key", sa.String),
)


def upgrade() -> None:
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_key", sa.String(length=64), nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.select(participants.c.id, participants.c.dataset_id, participants.c.source_name)).all()
    if rows:
        config = op.get_context().config
        keyed = config.attributes.get("source_key") if config is not None else None
        if keyed is None:
            raise InvalidInput(
                "the participants' source ids are hashed with the node's pseudonym key (keys/pseudonym.secret), "
                "which is missing: restore keys/ from the node's backup, then run `genoshare db upgrade` again"
            )
        connection.execute(
            participants.update()
            .where(participants.c.id == sa.bindparam("row"))
            .values(source_key=sa.bindparam("key")),
            [{"row": id, "key": keyed(dataset_id, name)} for id, dataset_id, name in rows],
        )
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.alter_column("source_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_constraint("uq_participants_source", type_="unique")
        batch_op.create_unique_constraint("uq_participants_source_key", ["dataset_id", "source_key"])
        batch_op.drop_column("source_name")


def downgrade() -> None:
    # The names cannot come back from their hashes: an older genoshare sees the hashes as names (restore the
    # backup taken before the upgrade to get them back).
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_name", sa.String(length=200), nullable=True))
    op.execute(participants.update().values(source_name=participants.c.source_key))
    with op.batch_alter_table("participants", schema=None) as batch_op:
        batch_op.alter_column("source_name", existing_type=sa.String(length=200), nullable=False)
        batch_op.drop_constraint("uq_participants_source_key", type_="unique")
        batch_op.create_unique_constraint("uq_participants_source", ["dataset_id", "source_name"])
        batch_op.drop_column("source_key")
