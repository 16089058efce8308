"""zoning layer: a county's zone polygons

Revision ID: b7e2d41c9a05
Revises: 8e5a0b3c6d29
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from alembic import op

revision: str = "b7e2d41c9a05"
down_revision: str | None = "8e5a0b3c6d29"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "zoning",
        sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
        sa.Column("county_id", sa.String(length=64), nullable=False),
        sa.Column("feature", sa.Integer(), nullable=False),
        sa.Column("zone_code", sa.String(length=32), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=True),
        sa.Column("geometry", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("min_lon", sa.Float(), nullable=False),
        sa.Column("min_lat", sa.Float(), nullable=False),
        sa.Column("max_lon", sa.Float(), nullable=False),
        sa.Column("max_lat", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("county_id", "feature", name="uq_zoning_county_feature"),
    )
    op.create_index(
        "ix_zoning_county_bbox",
        "zoning",
        ["county_id", "min_lon", "max_lon", "min_lat", "max_lat"],
    )


def downgrade() -> None:
    op.drop_index("ix_zoning_county_bbox", table_name="zoning")
    op.drop_table("zoning")
