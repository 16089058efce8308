"""job last_retry_at: when retryJob last queued a job again

Revision ID: 7d4f9a2b5c18
Revises: 6c2d8e1f4a37
Create Date: 2026-12-02 04:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "7d4f9a2b5c18"
down_revision: str | None = "6c2d8e1f4a37"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("report_jobs", "market_analysis_jobs", "gis_export_jobs", "valuation_jobs")


def upgrade() -> None:
    for table in TABLES:
        op.add_column(table, sa.Column("last_retry_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "last_retry_at")
