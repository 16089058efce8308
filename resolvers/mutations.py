"""Mutations: one generic `run` resolver serves all four kinds."""

from typing import Any

import strawberry

from jobs.lifecycle import parse_job_id
from jobs.spec import JobKind
from resolvers.context import Info
from resolvers.errors import client_errors
from schema.gis_export import GisExportJob, RunGisExportInput
from schema.inputs import plain
from schema.job import Job
from schema.job_types import job_from_snapshot
from schema.market_analysis import MarketAnalysisJob, RunMarketAnalysisInput
from schema.report import ReportJob, RunReportInput
from schema.valuation import RunValuationInput, ValuationJob


def _run(kind: JobKind, input_type: type, job_type: type, description: str) -> Any:
    async def resolve(info: Info, input: input_type) -> job_type:  # type: ignore[valid-type]
        with client_errors():
            caller = await info.context.current_caller()
            snap = await info.context.lifecycle.submit(kind, plain(input), caller)
        return job_from_snapshot(snap)

    return strawberry.mutation(resolver=resolve, description=description)


@strawberry.type
class Mutation:
    run_report: ReportJob = _run(
        JobKind.REPORT, RunReportInput, ReportJob, "Start a sales ratio study or assessment roll."
    )
    run_market_analysis: MarketAnalysisJob = _run(
        JobKind.MARKET_ANALYSIS,
        RunMarketAnalysisInput,
        MarketAnalysisJob,
        "Start a price trend or time-adjustment analysis.",
    )
    run_gis_export: GisExportJob = _run(
        JobKind.GIS_EXPORT, RunGisExportInput, GisExportJob, "Export an area's parcels to a file."
    )
    run_valuation: ValuationJob = _run(
        JobKind.VALUATION, RunValuationInput, ValuationJob, "Value one parcel or a whole county."
    )

    @strawberry.mutation(description="Cancel a PENDING or RUNNING job.")
    async def cancel_job(self, info: Info, id: strawberry.ID) -> Job:
        with client_errors():
            caller = await info.context.current_caller()
            snap = await info.context.lifecycle.cancel(parse_job_id(id), caller)
        return job_from_snapshot(snap)

    @strawberry.mutation(description="Run a FAILED or CANCELLED job again under the same id.")
    async def retry_job(self, info: Info, id: strawberry.ID) -> Job:
        with client_errors():
            caller = await info.context.current_caller()
            snap = await info.context.lifecycle.retry(parse_job_id(id), caller)
        return job_from_snapshot(snap)
