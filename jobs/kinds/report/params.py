"""A report's parameters, one pydantic model per report type (the source of its input)."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field
from typing_extensions import TypeAliasType

from jobs.params import FileOutputs, OutputFormat, SalesSelection, output_formats_field
from jobs.stats.ratio import DEFAULT_IQR_FACTOR, DEFAULT_QUANTILES

RatioGroupBy = TypeAliasType(
    "RatioGroupBy",
    Literal[
        "none",
        "property_class",
        "neighborhood",
        "zip_code",
        "sale_price_quartile",
        "sale_price_decile",
    ],
)
OutlierTrim = TypeAliasType("OutlierTrim", Literal["iqr", "quantile", "none"])
RatioTimeAdjustment = TypeAliasType(
    "RatioTimeAdjustment", Literal["none", "loglinear", "monthly_median"]
)
CodStandard = TypeAliasType(
    "CodStandard",
    Literal[
        "residential",
        "residential_homogeneous",
        "residential_other",
        "income",
        "income_urban",
        "vacant",
        "other",
    ],
)


class SalesRatioStudyParams(FileOutputs):
    """An IAAO sales ratio study: assessed values against sale prices."""

    html_report: ClassVar[bool] = True

    output_formats: list[OutputFormat] = output_formats_field("csv", "html")

    tax_year: int | None = Field(
        default=None, ge=1800, le=2200, description="assessment year (default: the latest)"
    )
    sales: SalesSelection = Field(
        default_factory=SalesSelection,
        description="which sales to study (default: the two years before the tax year)",
    )
    group_by: RatioGroupBy = Field(
        default="none",
        description="also compute each group; sale_price_quartile / sale_price_decile give "
        "the vertical-equity strata",
    )
    trim: OutlierTrim = Field(
        default="iqr",
        description="outlier method: iqr (IAAO Appendix B), quantile (assesspy), or none",
    )
    iqr_factor: float = Field(
        default=DEFAULT_IQR_FACTOR,
        gt=0,
        le=10,
        description="IQR multiple beyond which a ratio is an outlier (trim iqr): IAAO Appendix B "
        "suggests 1.5 to identify outliers and 3.0 for extreme ones (the Cook County Assessor "
        "uses 3.0)",
    )
    quantile_lower: float = Field(
        default=DEFAULT_QUANTILES[0], ge=0, lt=0.5, description="trim quantile: lowest kept"
    )
    quantile_upper: float = Field(
        default=DEFAULT_QUANTILES[1], gt=0.5, le=1, description="trim quantile: highest kept"
    )
    time_adjustment: RatioTimeAdjustment = Field(
        default="none",
        description="time-adjust sale prices to the assessment date (January 1 of the tax "
        "year) with the county's own index, as TIME_ADJUSTMENT computes it for the selection",
    )
    cod_standard: CodStandard | None = Field(
        default=None,
        description="IAAO COD range to judge by; default: from propertyClass, else residential",
    )


class AssessmentRollParams(FileOutputs):
    """Totals of the assessment roll, by property class and neighborhood."""

    tax_year: int | None = Field(
        default=None, ge=1800, le=2200, description="assessment year (default: the latest)"
    )
