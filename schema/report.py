"""ReportJob and its results."""

from __future__ import annotations

import datetime as dt

import strawberry
from strawberry.scalars import JSON

from schema.job import Job, JobControls, ResultFile
from schema.statistics import RatioStatistics


@strawberry.type
class RatioStudy:
    tax_year: int
    sale_date_from: dt.date
    sale_date_to: dt.date
    trim: str
    group_by: str | None
    overall: RatioStatistics
    groups: list[RatioStatistics]


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
    report_type: str
    result: ReportResult | None


@strawberry.input
class RunReportInput(JobControls):
    report_type: str = strawberry.field(description="sales_ratio_study | assessment_roll")
    county_id: str
    parameters: JSON | None = None
