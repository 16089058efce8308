"""MarketAnalysisJob and its results."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.scalars import JSON

from schema.job import Interval, Job, JobControls, ResultFile


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
    analysis_type: str
    result: MarketAnalysisResult | None


@strawberry.input
class RunMarketAnalysisInput(JobControls):
    analysis_type: str = strawberry.field(description="price_trend | time_adjustment")
    county_id: str
    parameters: JSON | None = None
