"""The gis_export_jobs table: the lifecycle's columns plus format, area, layers and file."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Float, Integer, String, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base
from jobs.table import JobMixin


class GisExportJobRow(JobMixin, Base):
    __tablename__ = "gis_export_jobs"

    export_format: Mapped[str] = mapped_column(String(32))
    area_of_interest: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    layers: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    file_path: Mapped[str | None] = mapped_column(Text)
    file_size_kb: Mapped[float | None] = mapped_column(Float)
    record_count: Mapped[int | None] = mapped_column(Integer)
