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
