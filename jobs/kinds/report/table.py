"""The report_jobs table: the lifecycle's columns plus the report type."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base
from jobs.table import JobMixin


class ReportJobRow(JobMixin, Base):
    __tablename__ = "report_jobs"
    id_column = "report_id"

    report_type: Mapped[str] = mapped_column(String(64))
