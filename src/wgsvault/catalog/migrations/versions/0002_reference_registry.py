"""reference registry: sequences with M5 and refget digests; FASTA copy of each build

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reference_build") as batch:
        batch.add_column(sa.Column("fasta", sa.Text(), nullable=True))
        batch.add_column(sa.Column("source", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sha256", sa.String(length=64), nullable=True))
    op.create_table(
        "reference_sequence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("length", sa.BigInteger(), nullable=False),
        sa.Column("md5", sa.String(length=32), nullable=False),
        sa.Column("refget", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["build_id"],
            ["reference_build.id"],
            name=op.f("fk_reference_sequence_build_id_reference_build"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reference_sequence")),
    )
    op.create_index(
        op.f("ix_reference_sequence_build_id"), "reference_sequence", ["build_id"], unique=False
    )
    op.create_index(op.f("ix_reference_sequence_md5"), "reference_sequence", ["md5"], unique=False)
    op.create_index(
        op.f("ix_reference_sequence_build_id_name"),
        "reference_sequence",
        ["build_id", "name"],
        unique=True,
    )


def downgrade() -> None:
    op.drop_table("reference_sequence")
    with op.batch_alter_table("reference_build") as batch:
        batch.drop_column("sha256")
        batch.drop_column("source")
        batch.drop_column("fasta")
