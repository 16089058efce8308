"""ReportJob and its results."""

from __future__ import annotations

import datetime as dt
from typing import Any

import strawberry
from strawberry.scalars import JSON

from jobs.kinds.report.spec import REPORT_TYPES
from schema.inputs import variant_types
from schema.job import Job, JobControls, ResultFile
from schema.statistics import RatioStatistics

ReportType, ReportParameters, ReportParametersOutput = variant_types(
    REPORT_TYPES, "ReportType", "ReportParameters", "report"
)


@strawberry.type(description="How many sales a step of the study's selection left out, and why.")
class SaleExclusion:
    step: str = strawberry.field(description="arms_length | assessment | filters | trim")
    excluded: int
    reason: str


@strawberry.type(description="The time adjustment a ratio study applied to sale prices.")
class RatioStudyTimeAdjustment:
    method: str
    adjusted_to: dt.date
    annual_trend_percent: float | None = None


@strawberry.type
class RatioStudy:
    tax_year: int
    sale_date_from: dt.date
    sale_date_to: dt.date
    trim: str
    group_by: str | None
    overall: RatioStatistics
    groups: list[RatioStatistics]
    iqr_factor: float | None = strawberry.field(default=None, description="with trim iqr")
    quantiles: list[float] | None = strawberry.field(
        default=None, description="kept quantile range, with trim quantile"
    )
    zip_codes: list[str] | None = None
    neighborhoods: list[str] | None = None
    time_adjustment: RatioStudyTimeAdjustment | None = None
    exclusions: list[SaleExclusion] = strawberry.field(default_factory=list)


@strawberry.type(description="Totals of the assessment roll for one group of parcels.")
class RollGroup:
    group: str
    parcel_count: int
    total_land_value: float
    total_improvement_value: float
    total_assessed_value: float
    median_assessed_value: float | None = None


@strawberry.type
class AssessmentRoll:
    tax_year: int
    parcel_count: int
    assessed_parcel_count: int = strawberry.field(description="parcels with an assessment")
    total_land_value: float
    total_improvement_value: float
    total_assessed_value: float
    by_property_class: list[RollGroup]
    by_neighborhood: list[RollGroup]


@strawberry.type
class ReportResult:
    ratio_study: RatioStudy | None = None
    assessment_roll: AssessmentRoll | None = None
    files: list[ResultFile]
    summary: JSON | None = None


@strawberry.type
class ReportJob(Job):
    report_type: ReportType  # type: ignore[valid-type]
    parameters: ReportParametersOutput  # type: ignore[valid-type]
    result: ReportResult | None

    @classmethod
    def parameters_by_variant(cls, snap: dict[str, Any]) -> dict[str, Any]:
        return {snap["fields"]["report_type"]: snap["parameters"]}


@strawberry.input
class RunReportInput(JobControls):
    county_id: str
    report_type: ReportType  # type: ignore[valid-type]
    parameters: ReportParameters | None = strawberry.field(  # type: ignore[valid-type]
        default=strawberry.UNSET,
        description="optional: the report type's defaults; when given, its one branch must "
        "match `reportType`",
    )
