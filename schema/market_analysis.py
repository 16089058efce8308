"""MarketAnalysisJob and its results."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from strawberry.scalars import JSON

from jobs.kinds.market_analysis.spec import ANALYSIS_TYPES
from schema.inputs import variant_types
from schema.job import Interval, Job, JobControls, ResultFile

AnalysisType, MarketAnalysisParameters, MarketAnalysisParametersOutput = variant_types(
    ANALYSIS_TYPES, "AnalysisType", "MarketAnalysisParameters", "market analysis"
)


@strawberry.type
class MarketTrendPoint:
    period: str
    group: str | None
    sales_volume: int
    average_price: float | None
    median_price: float | None
    median_price_per_sqft: float | None


@strawberry.type
class YearOverYear:
    year: int
    median_price: float
    change_percent: float | None = strawberry.field(description="against the year before")


@strawberry.type(description="Price-index factor of one month: price at valuation = price * factor")
class MonthlyFactor:
    month: str
    index: float
    factor: float
    sales_volume: int


@strawberry.type
class TimeAdjustment:
    valuation_date: dt.date
    method: str
    factors: list[MonthlyFactor]
    median_sale_price: float | None
    adjusted_median_sale_price: float | None
    sales_count: int


@strawberry.type
class MarketAnalysisResult:
    trends: list[MarketTrendPoint]
    annual_trend_percent: float | None = None
    annual_trend_ci: Interval | None = None
    year_over_year: list[YearOverYear] | None = None
    time_adjustment: TimeAdjustment | None = None
    files: list[ResultFile]
    summary: JSON | None = None


@strawberry.type
class MarketAnalysisJob(Job):
    analysis_type: AnalysisType  # type: ignore[valid-type]
    parameters: MarketAnalysisParametersOutput  # type: ignore[valid-type]
    result: MarketAnalysisResult | None

    @classmethod
    def parameters_by_variant(cls, snap: dict[str, Any]) -> dict[str, Any]:
        return {snap["fields"]["analysis_type"]: snap["parameters"]}


@strawberry.input
class RunMarketAnalysisInput(JobControls):
    county_id: str
    analysis_type: AnalysisType  # type: ignore[valid-type]
    parameters: MarketAnalysisParameters | None = strawberry.field(  # type: ignore[valid-type]
        default=strawberry.UNSET,
        description="optional: the analysis type's defaults; when given, its one branch must "
        "match `analysisType`",
    )
