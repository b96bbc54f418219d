"""apply: cluster jobs of a run, and a run's options

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("apply_run", schema=None) as batch_op:
        batch_op.add_column(sa.Column("options", sa.Text(), nullable=True))
    op.create_table(
        "cluster_job",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("genome", sa.String(length=200), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("cpus", sa.Integer(), nullable=False),
        sa.Column("mem_mb", sa.Integer(), nullable=False),
        sa.Column("time_min", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("log", sa.Text(), nullable=True),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["apply_run.id"], name=op.f("fk_cluster_job_run_id_apply_run")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cluster_job")),
    )
    with op.batch_alter_table("cluster_job", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_cluster_job_run_id_genome"), ["run_id", "genome"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_cluster_job_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cluster_job", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_cluster_job_job_id"))
        batch_op.drop_index(batch_op.f("ix_cluster_job_run_id_genome"))
    op.drop_table("cluster_job")
    with op.batch_alter_table("apply_run", schema=None) as batch_op:
        batch_op.drop_column("options")
