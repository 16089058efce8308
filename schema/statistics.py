"""Ratio-study statistics: used by reports and by valuations' holdout checks."""

from __future__ import annotations

import enum

import strawberry

from schema.job import Interval


@strawberry.enum(description="What a statistic's confidence interval says about its range.")
class ConfidenceVerdict(enum.Enum):
    MEETS_WITH_CONFIDENCE = "meets_with_confidence"
    FAILS_WITH_CONFIDENCE = "fails_with_confidence"
    INCONCLUSIVE = "inconclusive"


@strawberry.type(description="One IAAO standard a sample was judged by, and the verdict.")
class StandardCheck:
    standard: str = strawberry.field(description="level | uniformity | vertical_equity")
    statistic: str = strawberry.field(description="median_ratio | cod | prd | prb | mki")
    value: float
    lower: float = strawberry.field(description="lowest accepted value (inclusive)")
    upper: float = strawberry.field(description="highest accepted value (inclusive)")
    passes: bool = strawberry.field(description="the value lies in the range")
    with_confidence: ConfidenceVerdict | None = strawberry.field(
        default=None,
        description="the statistic's confidence interval lies wholly inside the range, wholly "
        "outside it, or straddles a bound; null for a statistic without an interval (MKI)",
    )


@strawberry.type(
    description="Sales-chasing screens of IAAO Standard on Ratio Studies Appendix E, as "
    "assesspy's is_sales_chased runs them: the CDF step and the distribution test."
)
class SalesChasing:
    flagged: bool = strawberry.field(description="both screens flag the sample")
    cdf_flagged: bool
    cdf_largest_step: float = strawberry.field(
        description="largest step of the ratios' empirical CDF (share of sales)"
    )
    cdf_step_at: float = strawberry.field(description="the ratio where that step is")
    distribution_flagged: bool
    share_in_bounds: float = strawberry.field(description="share of ratios inside the bounds")
    normal_share_in_bounds: float = strawberry.field(
        description="share a normal distribution of the ratios' mean and SD puts there"
    )
    bounds_lower: float
    bounds_upper: float
    gap: float = strawberry.field(description="threshold of both screens (share of sales)")
    count: int
    note: str | None = None


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
    meets_standards: bool | None = strawberry.field(
        default=None, description="level, COD, PRD and PRB all pass by their values"
    )
    meets_with_confidence: bool | None = strawberry.field(
        default=None,
        description="level, COD, PRD and PRB all meet with confidence (true), one fails with "
        "confidence (false), or the intervals cannot tell (null)",
    )
    standards: list[StandardCheck] = strawberry.field(
        default_factory=list,
        description="each standard checked (IAAO level, COD, PRD, PRB; MKI 0.95-1.05) and "
        "whether it passes, by value and by interval",
    )
    sales_chasing: SalesChasing | None = strawberry.field(
        default=None, description="IAAO Appendix E screens on the ratios used"
    )
    note: str | None = strawberry.field(default=None, description="why numbers are missing, if so")
