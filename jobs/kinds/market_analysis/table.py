"""The market_analysis_jobs table: the lifecycle's columns plus the analysis type."""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base
from jobs.table import JobMixin


class MarketAnalysisJobRow(JobMixin, Base):
    __tablename__ = "market_analysis_jobs"

    analysis_type: Mapped[str] = mapped_column(String(64))
