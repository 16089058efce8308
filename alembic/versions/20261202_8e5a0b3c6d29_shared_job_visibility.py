"""shared job visibility: PRIVATE, TEAM or COUNTY, and teams on tokens

A job records its visibility and its owner's team when it was submitted (so a TEAM job is
filtered in SQL without a join to the tokens); a token may belong to a team. Jobs from
before stay PRIVATE, as they were.

Revision ID: 8e5a0b3c6d29
Revises: 7d4f9a2b5c18
Create Date: 2026-12-02 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "8e5a0b3c6d29"
down_revision: str | None = "7d4f9a2b5c18"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("report_jobs", "market_analysis_jobs", "gis_export_jobs", "valuation_jobs")


def upgrade() -> None:
    op.add_column("api_tokens", sa.Column("team", sa.String(length=64), nullable=True))
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("visibility", sa.String(length=16), server_default="PRIVATE", nullable=False),
        )
        op.add_column(table, sa.Column("team", sa.String(length=64), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        op.drop_column(table, "team")
        op.drop_column(table, "visibility")
    op.drop_column("api_tokens", "team")
