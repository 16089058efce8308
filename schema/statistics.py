"""Ratio-study statistics: used by reports and by valuations' holdout checks."""

from __future__ import annotations

import strawberry
from strawberry.scalars import JSON

from schema.job import Interval


@strawberry.type(description="IAAO ratio statistics of one sample: the whole study or one group.")
class RatioStatistics:
    group: str | None = strawberry.field(description="null for the whole sample")
    count: int = strawberry.field(description="sales in the sample before outlier trimming")
    count_used: int = strawberry.field(description="sales left after outlier trimming")
    median_ratio: float | None = None
    median_ratio_ci: Interval | None = None
    mean_ratio: float | None = None
    weighted_mean_ratio: float | None = None
    cod: float | None = strawberry.field(default=None, description="coefficient of dispersion, %")
    cod_ci: Interval | None = None
    prd: float | None = strawberry.field(default=None, description="price-related differential")
    prd_ci: Interval | None = None
    prb: float | None = strawberry.field(default=None, description="price-related bias")
    prb_ci: Interval | None = None
    ki: float | None = strawberry.field(default=None, description="Kakwani index")
    mki: float | None = strawberry.field(default=None, description="modified Kakwani index")
    meets_standards: bool | None = None
    standards: JSON | None = strawberry.field(
        default=None, description="each IAAO standard checked and whether it passes"
    )
    note: str | None = strawberry.field(default=None, description="why numbers are missing, if so")
