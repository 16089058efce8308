"""A market analysis's parameters, one pydantic model per analysis type."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from jobs.params import SalesSelection


class PriceTrendParams(SalesSelection):
    period: Literal["month", "quarter", "year"] = "quarter"
    group_by: Literal["none", "zip_code", "neighborhood", "property_class"] = "none"


class TimeAdjustmentParams(SalesSelection):
    valuation_date: dt.date | None = None
    method: Literal["loglinear", "monthly_median"] = "loglinear"
