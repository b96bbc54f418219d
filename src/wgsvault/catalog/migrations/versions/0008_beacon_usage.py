"""serve: Beacon v2 query budget, counted per asker and window

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 15:10:00.000000

The variant frequency engine keeps its data outside the catalog (Parquet files beside their
state file) and needs no migration of its own.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "beacon_usage",
        sa.Column("who", sa.String(length=200), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("who", "window_start", name=op.f("pk_beacon_usage")),
    )


def downgrade() -> None:
    op.drop_table("beacon_usage")
