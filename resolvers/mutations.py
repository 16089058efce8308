"""Mutations: one generic `run` resolver serves all four kinds; templates and schedules
take any kind's run input through one `JobRunInput`."""

from typing import Annotated, Any

import strawberry

from jobs import schedules, templates
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
from schema.templates import JobRunInput, JobRunOverrides, JobTemplate, Schedule
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

    @strawberry.mutation(
        description="Save a named run input of any kind, validated as its run would be."
    )
    async def create_job_template(
        self,
        info: Info,
        name: str,
        input: JobRunInput,  # type: ignore[valid-type]
        description: str | None = None,
    ) -> JobTemplate:
        with client_errors():
            caller = await info.context.current_caller()
            snap = await templates.create_template(
                info.context.lifecycle, caller, name, description, plain(input)
            )
        return JobTemplate.from_snapshot(snap)

    @strawberry.mutation(
        description="Change a template you own: what is given replaces what was saved (a "
        "new input replaces the saved input whole)."
    )
    async def update_job_template(
        self,
        info: Info,
        id: strawberry.ID,
        name: str | None = None,
        description: str | None = None,
        input: JobRunInput | None = None,  # type: ignore[valid-type]
    ) -> JobTemplate:
        with client_errors():
            caller = await info.context.current_caller()
            snap = await templates.update_template(
                info.context.lifecycle,
                caller,
                parse_job_id(id),
                name,
                description,
                plain(input) if input is not None else None,
            )
        return JobTemplate.from_snapshot(snap)

    @strawberry.mutation(
        description="Delete a template you own (refused while schedules run it); jobs run "
        "from it keep its id. Returns the id."
    )
    async def delete_job_template(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        with client_errors():
            caller = await info.context.current_caller()
            await templates.delete_template(info.context.sessions, caller, parse_job_id(id))
        return id

    @strawberry.mutation(
        description="Start a job from a template you see; `overrides` replace saved fields "
        "for this run only, and the merged input is validated as a whole."
    )
    async def run_from_template(
        self,
        info: Info,
        template_id: strawberry.ID,
        overrides: JobRunOverrides | None = None,  # type: ignore[valid-type]
    ) -> Job:
        with client_errors():
            caller = await info.context.current_caller()
            snap = await templates.run_template(
                info.context.lifecycle,
                caller,
                parse_job_id(template_id, "templateId"),
                plain(overrides) if overrides is not None else None,
            )
        return job_from_snapshot(snap)

    @strawberry.mutation(
        description='Run a template at the times of a 5-field cron ("0 6 1 * *": 06:00 on '
        "the 1st of every month) read in an IANA time zone."
    )
    async def create_schedule(
        self,
        info: Info,
        template_id: strawberry.ID,
        cron: str,
        timezone: Annotated[
            str, strawberry.argument(description="an IANA zone, e.g. America/Chicago")
        ] = "UTC",
    ) -> Schedule:
        with client_errors():
            caller = await info.context.current_caller()
            snap = await schedules.create_schedule(
                info.context.sessions,
                caller,
                parse_job_id(template_id, "templateId"),
                cron,
                timezone,
            )
        return Schedule.from_snapshot(snap)

    @strawberry.mutation(description="Stop a schedule you own from creating jobs.")
    async def pause_schedule(self, info: Info, id: strawberry.ID) -> Schedule:
        with client_errors():
            caller = await info.context.current_caller()
            snap = await schedules.pause_schedule(info.context.sessions, parse_job_id(id), caller)
        return Schedule.from_snapshot(snap)

    @strawberry.mutation(
        description="Start a paused schedule again from its next due time after now; the "
        "due times it was paused over are not run."
    )
    async def resume_schedule(self, info: Info, id: strawberry.ID) -> Schedule:
        with client_errors():
            caller = await info.context.current_caller()
            snap = await schedules.resume_schedule(info.context.sessions, parse_job_id(id), caller)
        return Schedule.from_snapshot(snap)

    @strawberry.mutation(description="Delete a schedule you own; its jobs stay. Returns the id.")
    async def delete_schedule(self, info: Info, id: strawberry.ID) -> strawberry.ID:
        with client_errors():
            caller = await info.context.current_caller()
            await schedules.delete_schedule(info.context.sessions, parse_job_id(id), caller)
        return id
