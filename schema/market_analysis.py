"""MarketAnalysisJob and its results."""

from __future__ import annotations

import datetime as dt
import enum
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


@strawberry.enum(description="How the number of market areas was settled")
class AreaCountChoice(enum.Enum):
    AREA_COUNT = strawberry.enum_value("area_count", description="`areaCount` asked for it")
    SILHOUETTE = strawberry.enum_value(
        "silhouette", description="the count from 2 to `maxAreas` with the widest silhouette"
    )
    NEIGHBORHOOD_COUNT = strawberry.enum_value(
        "neighborhood_count", description="too few neighborhoods to group: one area each"
    )


@strawberry.type(description="A group of neighborhoods whose markets are alike")
class MarketArea:
    id: str = strawberry.field(
        description="`MA-1`, `MA-2`, ... in order of rising medianPricePerSqft"
    )
    name: str
    neighborhoods: list[str]
    sale_count: int
    parcel_count: int = strawberry.field(description="parcels of its neighborhoods")
    median_price_per_sqft: float = strawberry.field(
        description="median time-adjusted sale price per square foot of living area"
    )
    median_sale_price: float = strawberry.field(description="median time-adjusted sale price")
    annual_trend_percent: float | None = strawberry.field(
        description="log-linear trend of its price per square foot, percent a year"
    )
    annual_trend_ci: Interval | None


@strawberry.type(description="One neighborhood's evidence, and the market area it is in")
class MarketAreaNeighborhood:
    neighborhood: str
    area_id: str
    sale_count: int
    median_price_per_sqft: float = strawberry.field(
        description="median time-adjusted sale price per square foot of living area"
    )
    annual_trend_percent: float | None
    annual_trend_ci: Interval | None


@strawberry.type(description="A neighborhood left out of the areas for too few sales")
class ExcludedNeighborhood:
    neighborhood: str
    sale_count: int


@strawberry.type(description='Comparable market areas (README, "Comparable market areas")')
class ComparableMarketAreas:
    valuation_date: dt.date = strawberry.field(description="date prices are time-adjusted to")
    time_adjustment_method: str
    area_count: int
    chosen_by: AreaCountChoice
    silhouette: float | None = strawberry.field(
        description="mean silhouette width of the areas, -1 to 1 (higher: better separated)"
    )
    areas: list[MarketArea]
    neighborhoods: list[MarketAreaNeighborhood]
    excluded_neighborhoods: list[ExcludedNeighborhood]


@strawberry.type
class MarketAnalysisResult:
    trends: list[MarketTrendPoint]
    annual_trend_percent: float | None = None
    annual_trend_ci: Interval | None = None
    year_over_year: list[YearOverYear] | None = None
    time_adjustment: TimeAdjustment | None = None
    market_areas: ComparableMarketAreas | None = None
    warnings: list[str] = strawberry.field(
        default_factory=list,
        description="what the result leaves out or assumes that an assessor must know",
    )
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
