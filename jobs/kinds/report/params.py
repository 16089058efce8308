"""A report's parameters, one pydantic model per report type (the source of its input)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from jobs.params import Params, SalesSelection

GroupBy = Literal["none", "property_class", "neighborhood", "zip_code"]
CodStandard = Literal[
    "residential",
    "residential_homogeneous",
    "residential_other",
    "income",
    "income_urban",
    "vacant",
    "other",
]


class SalesRatioStudyParams(SalesSelection):
    tax_year: int | None = Field(default=None, ge=1800, le=2200)
    cod_standard: CodStandard | None = Field(
        default=None,
        description="IAAO COD range to judge by; default: from property_class, else residential",
    )
    group_by: GroupBy = "none"
    trim: Literal["iqr", "none"] = "iqr"
    iqr_factor: float = Field(default=1.5, gt=0, le=10)


class AssessmentRollParams(Params):
    tax_year: int | None = Field(default=None, ge=1800, le=2200)
