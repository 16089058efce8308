"""A valuation's parameters."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from jobs.params import Params


class ValuationParams(Params):
    method: Literal["hedonic", "comparables"] = "hedonic"
    valuation_date: dt.date | None = None
    k: int = Field(default=6, ge=1, le=50)
    holdout_fraction: float = Field(default=0.2, gt=0, lt=0.9)
