"""job names and descriptions

Every job gets a `name` (required; given at submission or built from kind and parameters)
and an optional `description`. Rows written before get a name in the same spirit, from
their variant column and county, so `name` can be NOT NULL at once.

Revision ID: 6c2d8e1f4a37
Revises: a15c0ffee001
Create Date: 2026-12-02 04:43:17
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "6c2d8e1f4a37"
down_revision: str | None = "a15c0ffee001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HEADLINE = {
    "report_jobs": "report_type",
    "market_analysis_jobs": "analysis_type",
    "gis_export_jobs": "'GIS export (' || replace(export_format, '_', ' ') || ')'",
    "valuation_jobs": "'Valuation (' || replace(valuation_method, '_', ' ') || ')'",
}


def upgrade() -> None:
    for table, headline in HEADLINE.items():
        op.add_column(table, sa.Column("name", sa.String(length=200), nullable=True))
        op.add_column(table, sa.Column("description", sa.Text(), nullable=True))
        op.execute(
            f"""UPDATE {table} SET name = left(
                  upper(left({headline}, 1)) || replace(substr({headline}, 2), '_', ' ')
                  || ', ' || county_id, 200)"""
        )
        op.alter_column(table, "name", nullable=False)


def downgrade() -> None:
    for table in HEADLINE:
        op.drop_column(table, "description")
        op.drop_column(table, "name")
