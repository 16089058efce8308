"""A market analysis's parameters, one pydantic model per analysis type."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field
from typing_extensions import TypeAliasType

from jobs.params import FileOutputs, SalesSelection

TrendPeriod = TypeAliasType("TrendPeriod", Literal["month", "quarter", "year"])
TrendGroupBy = TypeAliasType(
    "TrendGroupBy", Literal["none", "zip_code", "neighborhood", "property_class"]
)
TimeAdjustmentMethod = TypeAliasType("TimeAdjustmentMethod", Literal["loglinear", "monthly_median"])


class PriceTrendParams(FileOutputs):
    """Sales volume and prices per period, with the annual trend and its interval."""

    sales: SalesSelection = Field(
        default_factory=SalesSelection, description="which sales to read (default: all)"
    )
    period: TrendPeriod = Field(default="quarter", description="length of one trend point")
    group_by: TrendGroupBy = Field(default="none", description="one trend line per group")


class TimeAdjustmentParams(FileOutputs):
    """Monthly factors that move a sale price to the valuation date."""

    sales: SalesSelection = Field(
        default_factory=SalesSelection, description="which sales to read (default: all)"
    )
    valuation_date: dt.date | None = Field(
        default=None, description="date prices are adjusted to (default: the last sale)"
    )
    method: TimeAdjustmentMethod = Field(
        default="loglinear", description="how the monthly price index is estimated"
    )


class ComparableMarketAreaParams(FileOutputs):
    """Neighborhoods grouped into market areas whose time-adjusted price per square foot and
    annual trend are alike (Ward's hierarchical clustering of standardised neighborhood
    statistics; README, "Comparable market areas")."""

    sales: SalesSelection = Field(
        default_factory=SalesSelection, description="which sales to read (default: all)"
    )
    area_count: int | None = Field(
        default=None,
        ge=1,
        le=50,
        description="how many market areas to form (default: the count from 2 to maxAreas "
        "with the widest mean silhouette)",
    )
    max_areas: int = Field(
        default=8,
        ge=2,
        le=50,
        description="the largest area count tried when areaCount is not given",
    )
    min_sales_per_neighborhood: int = Field(
        default=10,
        ge=3,
        le=10_000,
        description="neighborhoods with fewer sales that have a living area are left out "
        "(listed in excludedNeighborhoods)",
    )
    trend_weight: float = Field(
        default=1.0,
        ge=0,
        le=10,
        description="weight of the standardised trend against the standardised price level "
        "(0: price level alone)",
    )
    valuation_date: dt.date | None = Field(
        default=None, description="date prices are time-adjusted to (default: the last sale)"
    )
    time_adjustment: TimeAdjustmentMethod = Field(
        default="loglinear", description="how the county's monthly price index is estimated"
    )
