"""job templates and recurring schedules

A template is a saved run input; a schedule runs one on a cron in a time zone. Each job
records the template and schedule it came from and whether it ran late; `schedule_runs`
holds one row per (schedule, due time), the key that lets exactly one job through per due
time however many workers try.

Revision ID: b7e2c4d9f013
Revises: b7e2d41c9a05
Create Date: 2026-12-02 06:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "b7e2c4d9f013"
down_revision: str | None = "b7e2d41c9a05"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("report_jobs", "market_analysis_jobs", "gis_export_jobs", "valuation_jobs")


def upgrade() -> None:
    op.create_table(
        "job_templates",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("team", sa.String(length=64), nullable=True),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("county_id", sa.String(length=64), nullable=False),
        sa.Column("run_input", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_job_templates_owner", "job_templates", ["owner"])
    op.create_table(
        "job_schedules",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("template_id", sa.Uuid(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.Column("next_run_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_job_id", sa.Uuid(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["template_id"], ["job_templates.id"], ondelete="RESTRICT"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_job_schedules_template_id", "job_schedules", ["template_id"])
    op.create_index("ix_job_schedules_owner", "job_schedules", ["owner"])
    op.create_index("ix_job_schedules_next_run_at", "job_schedules", ["next_run_at"])
    op.create_table(
        "schedule_runs",
        sa.Column("schedule_id", sa.Uuid(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False
        ),
        sa.ForeignKeyConstraint(["schedule_id"], ["job_schedules.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("schedule_id", "due_at"),
    )
    for table in TABLES:
        op.add_column(table, sa.Column("template_id", sa.Uuid(), nullable=True))
        op.add_column(table, sa.Column("schedule_id", sa.Uuid(), nullable=True))
        op.add_column(
            table, sa.Column("late", sa.Boolean(), server_default=sa.text("false"), nullable=False)
        )
        op.create_index(f"ix_{table}_schedule_id", table, ["schedule_id"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(f"ix_{table}_schedule_id", table_name=table)
        op.drop_column(table, "late")
        op.drop_column(table, "schedule_id")
        op.drop_column(table, "template_id")
    op.drop_table("schedule_runs")
    op.drop_index("ix_job_schedules_next_run_at", table_name="job_schedules")
    op.drop_index("ix_job_schedules_owner", table_name="job_schedules")
    op.drop_index("ix_job_schedules_template_id", table_name="job_schedules")
    op.drop_table("job_schedules")
    op.drop_index("ix_job_templates_owner", table_name="job_templates")
    op.drop_table("job_templates")
