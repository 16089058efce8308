"""A valuation's parameters."""

from __future__ import annotations

import datetime as dt
from typing import Literal, get_args

from pydantic import Field
from typing_extensions import TypeAliasType

from jobs.params import Params

ValuationMethod = TypeAliasType(
    "ValuationMethod", Literal["hedonic", "comparables", "gradient_boosting"]
)
_Features = Literal[
    "living_area_sqft",
    "lot_size_sqft",
    "year_built",
    "bedrooms",
    "bathrooms",
    "garage_spaces",
    "basement_sqft",
    "fireplaces",
    "central_air",
    "quality",
    "condition",
    "stories",
    "remodel_year",
    "location",
]
FEATURE_NAMES: tuple[str, ...] = get_args(_Features)
"""The core and the optional characteristics (app/characteristics.py, kept equal by a test),
and ``location`` (longitude and latitude)."""
ValuationFeature = TypeAliasType("ValuationFeature", _Features)


class ValuationParams(Params):
    """How to value: the model, the date values refer to, and its checks."""

    method: ValuationMethod = Field(
        default="hedonic",
        description="hedonic: a log-price regression; comparables: the k most similar sales "
        "(one parcel only); gradient_boosting: LightGBM trees, checked on a time-ordered "
        "holdout beside the hedonic model",
    )
    features: list[ValuationFeature] | None = Field(
        default=None,
        min_length=1,
        max_length=len(FEATURE_NAMES),
        description="characteristics the model uses; gradient_boosting default: every one the "
        "county's sales have, plus location; hedonic always uses the five core ones and adds "
        "the optional ones named here, and a location surface for location",
    )
    valuation_date: dt.date | None = Field(
        default=None,
        description="date the values refer to (default: the county's last arm's-length sale; "
        "a date more than a year beyond the sales is allowed, with a warning in the result)",
    )
    k: int = Field(default=6, ge=1, le=50, description="comparable sales used per parcel")
    holdout_fraction: float = Field(
        default=0.2,
        gt=0,
        lt=0.9,
        description="share of sales held out to check a county-wide model",
    )
