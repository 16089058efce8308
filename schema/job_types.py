"""Which GraphQL type renders which job kind."""

from __future__ import annotations

from typing import Any

from jobs.spec import JobKind
from schema.gis_export import GisExportJob
from schema.job import Job
from schema.market_analysis import MarketAnalysisJob
from schema.report import ReportJob
from schema.valuation import ValuationJob

JOB_TYPES: dict[JobKind, type[Job]] = {
    JobKind.REPORT: ReportJob,
    JobKind.MARKET_ANALYSIS: MarketAnalysisJob,
    JobKind.GIS_EXPORT: GisExportJob,
    JobKind.VALUATION: ValuationJob,
}


def job_from_snapshot(snap: dict[str, Any]) -> Job:
    return JOB_TYPES[JobKind(snap["kind"])].from_snapshot(snap)
