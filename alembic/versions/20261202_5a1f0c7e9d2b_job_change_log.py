"""job change log

Every job state change gets a row in job_changes, written in the change's own transaction,
and each job row remembers the change that produced its current state (change_seq). Jobs
that exist already get one change each, in the order they last changed, so they have a
cursor too.

Revision ID: 5a1f0c7e9d2b
Revises: 7cb31132d355
Create Date: 2026-12-02 03:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "5a1f0c7e9d2b"
down_revision: str | None = "7cb31132d355"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JOB_TABLES = {
    "report_jobs": ("REPORT", "report_id"),
    "market_analysis_jobs": ("MARKET_ANALYSIS", "job_id"),
    "gis_export_jobs": ("GIS_EXPORT", "job_id"),
    "valuation_jobs": ("VALUATION", "job_id"),
}


def upgrade() -> None:
    op.create_table(
        "job_changes",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("job_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("county_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "changed_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.execute("CREATE SEQUENCE job_changes_seq OWNED BY job_changes.seq")
    existing = " UNION ALL ".join(
        f"SELECT {id_column} AS job_id, '{kind}' AS kind, county_id, owner, status, version, "
        f"updated_at FROM {table}"
        for table, (kind, id_column) in JOB_TABLES.items()
    )
    op.execute(
        "INSERT INTO job_changes (seq, job_id, kind, county_id, owner, status, version, "
        "changed_at) SELECT nextval('job_changes_seq'), job_id, kind, county_id, owner, "
        f"status, version, updated_at FROM ({existing}) AS jobs ORDER BY updated_at"
    )
    for table, (_, id_column) in JOB_TABLES.items():
        op.add_column(table, sa.Column("change_seq", sa.BigInteger(), nullable=True))
        op.execute(
            f"UPDATE {table} SET change_seq = c.seq FROM job_changes c "
            f"WHERE c.job_id = {table}.{id_column}"
        )
        op.alter_column(table, "change_seq", nullable=False)


def downgrade() -> None:
    for table in JOB_TABLES:
        op.drop_column(table, "change_seq")
    op.drop_table("job_changes")
