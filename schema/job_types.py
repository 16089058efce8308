"""Which GraphQL types render and start which job kind."""

from __future__ import annotations

from typing import Any

from jobs.spec import JobKind
from schema.gis_export import GisExportJob, RunGisExportInput
from schema.job import Job
from schema.market_analysis import MarketAnalysisJob, RunMarketAnalysisInput
from schema.report import ReportJob, RunReportInput
from schema.valuation import RunValuationInput, ValuationJob

JOB_TYPES: dict[JobKind, type[Job]] = {
    JobKind.REPORT: ReportJob,
    JobKind.MARKET_ANALYSIS: MarketAnalysisJob,
    JobKind.GIS_EXPORT: GisExportJob,
    JobKind.VALUATION: ValuationJob,
}

RUN_INPUTS: dict[JobKind, type] = {
    JobKind.REPORT: RunReportInput,
    JobKind.MARKET_ANALYSIS: RunMarketAnalysisInput,
    JobKind.GIS_EXPORT: RunGisExportInput,
    JobKind.VALUATION: RunValuationInput,
}
"""Each kind's run input, for what takes any kind's (job templates)."""


def job_from_snapshot(snap: dict[str, Any]) -> Job:
    return JOB_TYPES[JobKind(snap["kind"])].from_snapshot(snap)
