"""Queries: thin calls into the lifecycle and the county data."""

import datetime as dt
from typing import Annotated

import strawberry

from jobs import schedules, templates
from jobs.access import Forbidden
from jobs.county_data import county_summaries
from jobs.lifecycle import parse_job_id
from jobs.listing import list_jobs
from jobs.spec import JobKind
from jobs.table import JobStatus
from resolvers.context import Info
from resolvers.errors import client_errors
from schema.county import County
from schema.gis_export import GisExportJob
from schema.job import Job
from schema.job_types import job_from_snapshot
from schema.listing import JobOrderInput
from schema.market_analysis import MarketAnalysisJob
from schema.node import Node
from schema.report import ReportJob
from schema.templates import JobTemplate, Schedule
from schema.valuation import ValuationJob

DEFAULT_ORDER = JobOrderInput()


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class JobEdge:
    cursor: str
    node: Job


@strawberry.type
class JobConnection:
    edges: list[JobEdge]
    page_info: PageInfo
    total_count: int


async def _job(info: Info, id: strawberry.ID, kind: JobKind | None = None) -> Job | None:
    """Null for a job that does not exist and for one the caller may not see alike.

    Asking a kind's query without that kind's read permission is FORBIDDEN: it reveals
    nothing about any job.
    """
    with client_errors():
        caller = await info.context.current_caller()
        if kind is not None:
            caller.require(kind, "read")
        elif not caller.readable_kinds():
            raise Forbidden("<kind>:read for at least one kind")
        job_id = parse_job_id(id)
    found = await info.context.lifecycle.find(job_id, kind, caller=caller)
    return info.context.rendered.job(*found) if found else None


def _job_of_kind(kind: JobKind):  # type: ignore[no-untyped-def]
    async def resolve(info: Info, id: strawberry.ID) -> Job | None:
        return await _job(info, id, kind)

    return resolve


@strawberry.type
class Query:
    @strawberry.field(description="A job of any kind by id; null when there is none.")
    async def job(self, info: Info, id: strawberry.ID) -> Job | None:
        return await _job(info, id)

    @strawberry.field(
        description="Any object by its global id (Relay): a job by its UUID, null when there "
        "is none the caller may see, as for `job`."
    )
    async def node(self, info: Info, id: strawberry.ID) -> Node | None:
        return await _job(info, id)

    report_job: ReportJob | None = strawberry.field(resolver=_job_of_kind(JobKind.REPORT))
    market_analysis_job: MarketAnalysisJob | None = strawberry.field(
        resolver=_job_of_kind(JobKind.MARKET_ANALYSIS)
    )
    gis_export_job: GisExportJob | None = strawberry.field(
        resolver=_job_of_kind(JobKind.GIS_EXPORT)
    )
    valuation_job: ValuationJob | None = strawberry.field(resolver=_job_of_kind(JobKind.VALUATION))

    @strawberry.field(
        description="Jobs, filtered, in `orderBy` order (newest first by default); Relay "
        "cursor pagination: pass a page's `endCursor` as `after` with the same `orderBy`."
    )
    async def jobs(
        self,
        info: Info,
        kind: JobKind | None = None,
        status: JobStatus | None = None,
        county_id: str | None = None,
        first: int = 20,
        after: str | None = None,
        order_by: JobOrderInput = DEFAULT_ORDER,
        created_after: Annotated[
            dt.datetime | None,
            strawberry.argument(description="only jobs created at or after this time"),
        ] = None,
        created_before: Annotated[
            dt.datetime | None,
            strawberry.argument(description="only jobs created before this time"),
        ] = None,
        owner: Annotated[
            str | None,
            strawberry.argument(
                description="only the jobs of this token name; admins only (anyone else sees "
                "only its own jobs: another name is FORBIDDEN)"
            ),
        ] = None,
        changed_after: Annotated[
            str | None,
            strawberry.argument(
                description="a changeCursor: list the jobs changed since, oldest change "
                "first, instead of orderBy order; poll again with pageInfo.endCursor. Older "
                "than the change log keeps: CURSOR_EXPIRED."
            ),
        ] = None,
        search: Annotated[
            str | None,
            strawberry.argument(
                description="only jobs whose name or description contains this text "
                "(case-insensitive, taken literally; at most 200 characters)"
            ),
        ] = None,
    ) -> JobConnection:
        with client_errors():
            page = await list_jobs(
                info.context.sessions,
                caller=await info.context.current_caller(),
                kind=kind,
                status=status,
                county_id=county_id,
                first=first,
                after=after,
                order=order_by.to_order(),
                created_after=created_after,
                created_before=created_before,
                owner=owner,
                changed_after=changed_after,
                search=search,
                retention_hours=info.context.settings.event_retention_hours,
            )
        edges = [
            JobEdge(cursor=cursor, node=job_from_snapshot(snap))
            for snap, cursor in zip(page.snapshots, page.cursors, strict=True)
        ]
        return JobConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                end_cursor=page.end_cursor or (page.cursors[-1] if edges else None),
            ),
            total_count=page.total_count,
        )

    @strawberry.field(description="Counties with data, and what data, to find valid job inputs.")
    async def counties(self, info: Info) -> list[County]:
        with client_errors():
            await info.context.current_caller()
        async with info.context.sessions() as session:
            return [County(**vars(c)) for c in await county_summaries(session)]

    @strawberry.field(
        description="The job templates you see (yours, your team's TEAM ones, "
        "every COUNTY one of a kind you may read), by name."
    )
    async def job_templates(
        self, info: Info, kind: JobKind | None = None, first: int = 100
    ) -> list[JobTemplate]:
        with client_errors():
            caller = await info.context.current_caller()
            snaps = await templates.list_templates(info.context.sessions, caller, kind, first)
        return [JobTemplate.from_snapshot(snap) for snap in snaps]

    @strawberry.field(description="A job template by id; null when there is none you see.")
    async def job_template(self, info: Info, id: strawberry.ID) -> JobTemplate | None:
        with client_errors():
            caller = await info.context.current_caller()
            try:
                row = await templates.find_template(info.context.sessions, parse_job_id(id), caller)
            except templates.TemplateNotFound:
                return None
        return JobTemplate.from_snapshot(templates.template_snapshot(row))

    @strawberry.field(
        description="The schedules of the templates you see, soonest first, "
        "paused ones last; each with its next due time."
    )
    async def schedules(
        self, info: Info, template_id: strawberry.ID | None = None
    ) -> list[Schedule]:
        with client_errors():
            caller = await info.context.current_caller()
            wanted = parse_job_id(template_id, "templateId") if template_id else None
            snaps = await schedules.list_schedules(info.context.sessions, caller, wanted)
        return [Schedule.from_snapshot(snap) for snap in snaps]

    @strawberry.field(description="A schedule by id; null when there is none you see.")
    async def schedule(self, info: Info, id: strawberry.ID) -> Schedule | None:
        with client_errors():
            caller = await info.context.current_caller()
            snap = await schedules.get_schedule(info.context.sessions, parse_job_id(id), caller)
        return Schedule.from_snapshot(snap) if snap else None
