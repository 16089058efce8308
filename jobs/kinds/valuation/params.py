"""A valuation's parameters."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field
from typing_extensions import TypeAliasType

from jobs.params import Params

ValuationMethod = TypeAliasType("ValuationMethod", Literal["hedonic", "comparables"])


class ValuationParams(Params):
    """How to value: the model, the date values refer to, and its checks."""

    method: ValuationMethod = Field(
        default="hedonic",
        description="hedonic: a log-price regression; comparables: the k most similar sales "
        "(one parcel only)",
    )
    valuation_date: dt.date | None = Field(
        default=None, description="date the values refer to (default: today)"
    )
    k: int = Field(default=6, ge=1, le=50, description="comparable sales used per parcel")
    holdout_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=0.9,
        description="share of sales held out to check a county-wide model",
    )
