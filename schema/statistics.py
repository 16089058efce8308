"""Ratio-study statistics: used by reports and by valuations' holdout checks."""

from __future__ import annotations

import strawberry

from schema.job import Interval


@strawberry.type(description="One IAAO standard a sample was judged by, and the verdict.")
class StandardCheck:
    standard: str = strawberry.field(description="level | uniformity | vertical_equity")
    statistic: str = strawberry.field(description="median_ratio | cod | prd | prb")
    value: float
    lower: float = strawberry.field(description="lowest accepted value (inclusive)")
    upper: float = strawberry.field(description="highest accepted value (inclusive)")
    passes: bool


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
    standards: list[StandardCheck] = strawberry.field(
        default_factory=list, description="each IAAO standard checked and whether it passes"
    )
    note: str | None = strawberry.field(default=None, description="why numbers are missing, if so")
