"""The valuation_jobs table, and the per-parcel values a county-wide valuation writes."""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, Float, ForeignKey, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from app.models import Base
from jobs.table import JobMixin


class ValuationJobRow(JobMixin, Base):
    __tablename__ = "valuation_jobs"

    property_id: Mapped[str | None] = mapped_column(String(64))
    valuation_method: Mapped[str] = mapped_column(String(32))
    estimated_value: Mapped[float | None] = mapped_column(Float)


class ParcelValuation(Base):
    """One parcel's value from a county-wide valuation job."""

    __tablename__ = "valuations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("valuation_jobs.job_id", ondelete="CASCADE"), index=True
    )
    county_id: Mapped[str] = mapped_column(String(64))
    parcel_id: Mapped[str] = mapped_column(String(64))
    estimated_value: Mapped[float] = mapped_column(Float)
    lower: Mapped[float] = mapped_column(Float)
    upper: Mapped[float] = mapped_column(Float)
