"""A report's parameters, one pydantic model per report type (the source of its input)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from typing_extensions import TypeAliasType

from jobs.params import Params, SalesSelection

RatioGroupBy = TypeAliasType(
    "RatioGroupBy", Literal["none", "property_class", "neighborhood", "zip_code"]
)
OutlierTrim = TypeAliasType("OutlierTrim", Literal["iqr", "none"])
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


class SalesRatioStudyParams(Params):
    """An IAAO sales ratio study: assessed values against sale prices."""

    tax_year: int | None = Field(
        default=None, ge=1800, le=2200, description="assessment year (default: the latest)"
    )
    sales: SalesSelection = Field(
        default_factory=SalesSelection,
        description="which sales to study (default: the two years before the tax year)",
    )
    group_by: RatioGroupBy = Field(default="none", description="also compute each group")
    trim: OutlierTrim = Field(default="iqr", description="outlier trimming before statistics")
    iqr_factor: float = Field(
        default=1.5, gt=0, le=10, description="IQR multiple beyond which a ratio is an outlier"
    )
    cod_standard: CodStandard | None = Field(
        default=None,
        description="IAAO COD range to judge by; default: from propertyClass, else residential",
    )


class AssessmentRollParams(Params):
    """Totals of the assessment roll, by property class and neighborhood."""

    tax_year: int | None = Field(
        default=None, ge=1800, le=2200, description="assessment year (default: the latest)"
    )
