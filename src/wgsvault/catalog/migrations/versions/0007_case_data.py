"""report: case data of genomes, principal roles, footprint history, plan promises

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 12:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("genome", schema=None) as batch_op:
        batch_op.add_column(sa.Column("requisition_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("sample_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("delivery_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("report_date", sa.Date(), nullable=True))
        batch_op.add_column(sa.Column("urgency", sa.String(length=20), nullable=True))
        batch_op.add_column(sa.Column("family_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("sex", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("answered", sa.Boolean(), nullable=True))
        batch_op.create_index(batch_op.f("ix_genome_family_id"), ["family_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_genome_sequencing_date"), ["sequencing_date"], unique=False
        )
    with op.batch_alter_table("principal", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("role", sa.String(length=20), nullable=False, server_default="data")
        )
    with op.batch_alter_table("apply_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("promised_bytes", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("freed_bytes", sa.BigInteger(), nullable=True))
    op.create_table(
        "footprint_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("controller", sa.String(length=200), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("files", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("genomes", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["scan_id"], ["scan.id"], name=op.f("fk_footprint_snapshot_scan_id_scan")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_footprint_snapshot")),
    )
    with op.batch_alter_table("footprint_snapshot", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_footprint_snapshot_at"), ["at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("footprint_snapshot", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_footprint_snapshot_at"))
    op.drop_table("footprint_snapshot")
    with op.batch_alter_table("apply_run", schema=None) as batch_op:
        batch_op.drop_column("freed_bytes")
        batch_op.drop_column("promised_bytes")
    with op.batch_alter_table("principal", schema=None) as batch_op:
        batch_op.drop_column("role")
    with op.batch_alter_table("genome", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_genome_sequencing_date"))
        batch_op.drop_index(batch_op.f("ix_genome_family_id"))
        for col in ("answered", "sex", "family_id", "urgency", "report_date", "delivery_date",
                    "sample_date", "requisition_date"):
            batch_op.drop_column(col)
