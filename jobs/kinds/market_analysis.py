"""MarketAnalysisJob: price trends and time-adjustment factors from a county's sales."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from sqlalchemy import String
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from app.config import Settings
from app.models import Base
from jobs.county_data import require_county
from jobs.market import price_trend, time_adjustment
from jobs.params import SalesSelection
from jobs.spec import JobKind, KindSpec, ValidatedInput
from jobs.table import JobMixin
from jobs.variants import Variant, Variants


class MarketAnalysisJobRow(JobMixin, Base):
    __tablename__ = "market_analysis_jobs"

    analysis_type: Mapped[str] = mapped_column(String(64))


class PriceTrendParams(SalesSelection):
    period: Literal["month", "quarter", "year"] = "quarter"
    group_by: Literal["none", "zip_code", "neighborhood", "property_class"] = "none"


class TimeAdjustmentParams(SalesSelection):
    valuation_date: dt.date | None = None
    method: Literal["loglinear", "monthly_median"] = "loglinear"


ANALYSIS_TYPES = Variants(
    field="analysisType",
    column="analysis_type",
    choices={
        "price_trend": Variant(PriceTrendParams, price_trend.run),
        "time_adjustment": Variant(TimeAdjustmentParams, time_adjustment.run),
    },
)


async def validate(
    session: AsyncSession, raw: Mapping[str, Any], settings: Settings
) -> ValidatedInput:
    analysis_type, params = ANALYSIS_TYPES.parse(raw, settings)
    await require_county(session, raw["county_id"])
    return ValidatedInput(
        county_id=raw["county_id"],
        parameters=params.model_dump(mode="json"),
        columns={"analysis_type": analysis_type},
    )


SPEC = KindSpec(
    kind=JobKind.MARKET_ANALYSIS,
    model=MarketAnalysisJobRow,
    metric_prefix="market_analysis",
    type_label="analysis_type",
    validate=validate,
    compute=ANALYSIS_TYPES.compute,
)
