"""Recurring schedules: a template run at the times of a 5-field cron in an IANA time zone.

Every worker's maintenance tick runs `run_due_schedules`; any number may try the same due
time, and `schedule_runs`' key (schedule, due time), taken in the job's own transaction
(jobs.origin), lets exactly one job through, across restarts too. A schedule stores the
earliest due time not yet run (`next_run_at`). When the tick finds several due times past
(everything was down), it runs the latest once, marked `late`, and goes on from the next
time to come; a run that starts more than `SCHEDULE_LATE_AFTER_SECONDS` after its due time
is late as well. Pausing stops runs; resuming goes on from the next time after the resume,
so a pause makes no late run.

A due time is computed in the schedule's zone (cronsim, with cron's own DST rules: a time
that a spring-forward skips runs at the first minute after the gap, one that a fall-back
repeats runs once), and stored in UTC.

The jobs belong to the schedule's owner, as that owner's token stands when each runs: a
revoked token, or one that lost the kind's permission or sight of the template, runs
nothing and the schedule records why (`lastError`) and goes on to its next time.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
import zoneinfo
from collections.abc import Awaitable, Callable
from typing import Any

from cronsim import CronSim, CronSimError
from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    String,
    Text,
    Uuid,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import SessionFactory
from app.models import Base
from jobs.access import ADMIN, Caller, Forbidden
from jobs.lifecycle import Lifecycle
from jobs.origin import AlreadyRun, Origin
from jobs.spec import BadInput, JobKind
from jobs.templates import JobTemplate, TemplateNotFound, branch, find_template, run_template

log = logging.getLogger(__name__)

MAX_CRON = 128
DUE_BATCH = 100
MAX_UPCOMING = 50
MAX_SCHEDULES = 500

CallerOf = Callable[[str | None], Awaitable[Caller | None]]
"""The caller a schedule's owner is now (app.auth), None when its token is gone."""


class ScheduleNotFound(LookupError):
    def __str__(self) -> str:
        return f"no schedule with id {self.args[0]}"


class Schedule(Base):
    __tablename__ = "job_schedules"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    template_id: Mapped[uuid.UUID] = mapped_column(
        Uuid, ForeignKey("job_templates.id", ondelete="RESTRICT"), index=True
    )
    owner: Mapped[str | None] = mapped_column(String(128), index=True)
    cron: Mapped[str] = mapped_column(String(MAX_CRON))
    timezone: Mapped[str] = mapped_column(String(64))
    paused: Mapped[bool] = mapped_column(Boolean, server_default=text("false"))
    next_run_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), index=True, doc="the earliest due time not yet run"
    )
    last_due_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now()
    )


def parse_zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise BadInput(
            "timezone",
            f"{name!r} is not an IANA time zone; give one such as America/Chicago or UTC",
        ) from None


def check_cron(expr: str, zone: zoneinfo.ZoneInfo) -> str:
    """A 5-field cron expression (minute hour day-of-month month day-of-week), normalised."""
    fields = expr.split()
    if len(fields) != 5:
        raise BadInput(
            "cron",
            f"{expr!r} has {len(fields)} fields; give 5: minute hour day-of-month month "
            'day-of-week, e.g. "0 6 1 * *" for 06:00 on the 1st of every month',
        )
    normal = " ".join(fields)
    if len(normal) > MAX_CRON:
        raise BadInput("cron", f"must be at most {MAX_CRON} characters")
    try:
        next(CronSim(normal, dt.datetime.now(zone)))
    except CronSimError as exc:
        raise BadInput("cron", f"{expr!r} is not a valid cron expression: {exc}") from None
    except StopIteration:
        raise BadInput("cron", f"{expr!r} never matches a date") from None
    return normal


def due_after(expr: str, zone: str, after: dt.datetime, count: int = 1) -> list[dt.datetime]:
    """The next `count` due times strictly after `after`, in UTC."""
    times = CronSim(expr, after.astimezone(zoneinfo.ZoneInfo(zone)))
    return [next(times).astimezone(dt.UTC) for _ in range(count)]


def latest_due(expr: str, zone: str, now: dt.datetime) -> dt.datetime:
    """The last due time at or before `now`, in UTC."""
    local = (now + dt.timedelta(microseconds=1)).astimezone(zoneinfo.ZoneInfo(zone))
    return next(CronSim(expr, local, reverse=True)).astimezone(dt.UTC)


def describe(expr: str, zone: str) -> str:
    """The expression in words, as cronsim explains it: "At 06:00 on day 1 of every month"."""
    return f"{CronSim(expr, dt.datetime.now(zoneinfo.ZoneInfo(zone))).explain()} ({zone})"


def schedule_snapshot(row: Any, kind: str) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "template_id": str(row.template_id),
        "kind": kind,
        "owner": row.owner,
        "cron": row.cron,
        "timezone": row.timezone,
        "paused": row.paused,
        "next_run_at": None if row.paused else row.next_run_at,
        "last_due_at": row.last_due_at,
        "last_job_id": str(row.last_job_id) if row.last_job_id else None,
        "last_error": row.last_error,
        "created_at": row.created_at,
        "updated_at": row.updated_at,
    }


async def create_schedule(
    sessions: SessionFactory, caller: Caller, template_id: uuid.UUID, cron: str, timezone: str
) -> dict[str, Any]:
    """A schedule of the caller's, running a template it sees and whose kind it may run."""
    zone = parse_zone(timezone)
    expr = check_cron(cron, zone)
    try:
        template = await find_template(sessions, template_id, caller)
    except TemplateNotFound:
        raise BadInput("templateId", f"no job template with id {template_id}") from None
    caller.require(JobKind(template.kind), "run")
    (first,) = due_after(expr, timezone, dt.datetime.now(dt.UTC))
    async with sessions.begin() as session:
        row = (
            await session.execute(
                insert(Schedule)
                .values(
                    id=uuid.uuid4(),
                    template_id=template_id,
                    owner=caller.name,
                    cron=expr,
                    timezone=timezone,
                    next_run_at=first,
                )
                .returning(Schedule)
            )
        ).scalar_one()
        return schedule_snapshot(row, template.kind)


async def _find(
    sessions: SessionFactory, schedule_id: uuid.UUID, caller: Caller
) -> tuple[Schedule, JobTemplate]:
    """A schedule is seen by whoever sees its template."""
    async with sessions() as session:
        row = await session.get(Schedule, schedule_id)
    if row is None:
        raise ScheduleNotFound(str(schedule_id))
    try:
        template = await find_template(sessions, row.template_id, caller)
    except TemplateNotFound:
        raise ScheduleNotFound(str(schedule_id)) from None
    return row, template


async def get_schedule(
    sessions: SessionFactory, schedule_id: uuid.UUID, caller: Caller
) -> dict[str, Any] | None:
    try:
        row, template = await _find(sessions, schedule_id, caller)
    except ScheduleNotFound:
        return None
    return schedule_snapshot(row, template.kind)


async def _steer(
    sessions: SessionFactory, schedule_id: uuid.UUID, caller: Caller, action: str, **values: Any
) -> dict[str, Any]:
    row, template = await _find(sessions, schedule_id, caller)
    caller.require(JobKind(template.kind), "run")
    if not caller.steers(row.owner):
        raise Forbidden(
            ADMIN, f"schedule {schedule_id} is {row.owner}'s; only they or an admin may {action} it"
        )
    async with sessions.begin() as session:
        if action == "delete":
            await session.execute(delete(Schedule).where(Schedule.id == schedule_id))
            return schedule_snapshot(row, template.kind)
        changed = (
            await session.execute(
                update(Schedule)
                .where(Schedule.id == schedule_id)
                .values(updated_at=func.now(), **values)
                .returning(Schedule)
            )
        ).scalar_one()
        return schedule_snapshot(changed, template.kind)


async def pause_schedule(
    sessions: SessionFactory, schedule_id: uuid.UUID, caller: Caller
) -> dict[str, Any]:
    return await _steer(sessions, schedule_id, caller, "pause", paused=True)


async def resume_schedule(
    sessions: SessionFactory, schedule_id: uuid.UUID, caller: Caller
) -> dict[str, Any]:
    """Go on from the next due time after now: the paused ones are not made up for."""
    async with sessions() as session:
        row = await session.get(Schedule, schedule_id)
    values: dict[str, Any] = {}
    if row is not None and row.paused:
        values.update(
            paused=False,
            next_run_at=due_after(row.cron, row.timezone, dt.datetime.now(dt.UTC))[0],
        )
    return await _steer(sessions, schedule_id, caller, "resume", **values)


async def delete_schedule(sessions: SessionFactory, schedule_id: uuid.UUID, caller: Caller) -> None:
    await _steer(sessions, schedule_id, caller, "delete")


async def list_schedules(
    sessions: SessionFactory, caller: Caller, template_id: uuid.UUID | None
) -> list[dict[str, Any]]:
    """The schedules of every template `caller` sees, soonest first (paused last), at most
    MAX_SCHEDULES."""
    kinds = [k.value for k in caller.readable_kinds()]
    query = (
        select(Schedule, JobTemplate.kind)
        .join(JobTemplate, JobTemplate.id == Schedule.template_id)
        .where(JobTemplate.kind.in_(kinds), caller.visible(JobTemplate))
        .order_by(Schedule.paused, Schedule.next_run_at, Schedule.id)
        .limit(MAX_SCHEDULES)
    )
    if template_id is not None:
        query = query.where(Schedule.template_id == template_id)
    async with sessions() as session:
        return [schedule_snapshot(row, kind) for row, kind in (await session.execute(query)).all()]


async def run_due_schedules(lifecycle: Lifecycle, caller_of: CallerOf) -> int:
    """Create the job of every schedule that is due; the number of jobs created here."""
    async with lifecycle.sessions() as session:
        due = (
            await session.scalars(
                select(Schedule)
                .where(Schedule.paused.is_(False), Schedule.next_run_at <= func.now())
                .order_by(Schedule.next_run_at)
                .limit(DUE_BATCH)
            )
        ).all()
    created = 0
    for schedule in due:
        created += await _run_once(lifecycle, caller_of, schedule)
    return created


async def _run_once(lifecycle: Lifecycle, caller_of: CallerOf, schedule: Schedule) -> bool:
    now = dt.datetime.now(dt.UTC)
    due = latest_due(schedule.cron, schedule.timezone, now)
    if due < schedule.next_run_at:
        return False  # this worker's clock is behind the one that set next_run_at
    grace = dt.timedelta(seconds=lifecycle.settings.schedule_late_after_seconds)
    late = due > schedule.next_run_at or now - due > grace
    (upcoming,) = due_after(schedule.cron, schedule.timezone, due)
    job_id: uuid.UUID | None = None
    error: str | None = None
    caller = await caller_of(schedule.owner)
    try:
        if caller is None:
            raise Forbidden(ADMIN, f"the owner's token {schedule.owner!r} is revoked or gone")
        template = await find_template(lifecycle.sessions, schedule.template_id, caller)
        snap = await run_template(
            lifecycle,
            caller,
            template.id,
            {branch(JobKind(template.kind)): {"scheduled_for": due}},
            Origin(template.id, schedule.id, due, late),
        )
        job_id = uuid.UUID(snap["id"])
    except AlreadyRun:
        log.debug("schedule %s: %s already ran", schedule.id, due)
    except (BadInput, Forbidden, TemplateNotFound) as exc:
        error = f"run due {due.isoformat()} not started: {exc}"
        log.warning("schedule %s: %s", schedule.id, error)
    values: dict[str, Any] = {"next_run_at": upcoming, "updated_at": func.now()}
    if job_id is not None or error is not None:
        values.update(last_due_at=due, last_job_id=job_id, last_error=error)
    async with lifecycle.sessions.begin() as session:
        await session.execute(
            update(Schedule)
            .where(Schedule.id == schedule.id, Schedule.next_run_at < upcoming)
            .values(values)
        )
    if job_id is not None and late:
        log.warning("schedule %s ran late: due %s, started %s", schedule.id, due, now)
    return job_id is not None
