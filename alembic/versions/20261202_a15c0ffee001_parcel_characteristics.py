"""optional CAMA characteristics on parcels

Revision ID: a15c0ffee001
Revises: 5b1e0c7a9d21
Create Date: 2026-12-02 03:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "a15c0ffee001"
down_revision: str | None = "5b1e0c7a9d21"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than read from app/characteristics.py: a migration records the schema
# of its day, and must not change when the list grows.
COLUMNS = (
    ("garage_spaces", sa.Integer()),
    ("basement_sqft", sa.Float()),
    ("fireplaces", sa.Integer()),
    ("central_air", sa.Integer()),
    ("quality", sa.Integer()),
    ("condition", sa.Integer()),
    ("stories", sa.Float()),
    ("remodel_year", sa.Integer()),
)


def upgrade() -> None:
    for name, kind in COLUMNS:
        op.add_column("parcels", sa.Column(name, kind, nullable=True))


def downgrade() -> None:
    for name, _ in reversed(COLUMNS):
        op.drop_column("parcels", name)
