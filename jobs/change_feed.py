"""Reading the change log: pages of current job states after a cursor.

Both the API's event listener (catching up after a gap or a lost Redis) and a resuming
client (`jobsUpdated(after:)`, `jobs(changedAfter:)`) read here, so they agree on what
"every change after n" means.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select, union_all

from app.db import SessionFactory, autocommit
from jobs.access import Caller
from jobs.changes import JobChange, settled_end
from jobs.lifecycle import snapshot
from jobs.registry import KINDS
from jobs.spec import JobKind
from jobs.table import JobStatus

PAGE = 500


@dataclass(frozen=True)
class ChangeFilter:
    """Which changes a reader wants, applied in SQL; `owner` None means everyone's, `viewer`
    None no visibility rule (the API's own listener); a client's reads pass its caller."""

    kinds: Collection[JobKind]
    viewer: Caller | None = None
    owner: str | None = None
    county_id: str | None = None
    status: JobStatus | None = None
    created_after: dt.datetime | None = None
    created_before: dt.datetime | None = None
    search: str | None = None
    """Case-insensitive text the job's name or description contains (no wildcards)."""


EVERYTHING = ChangeFilter(kinds=tuple(KINDS))


@dataclass(frozen=True)
class ChangePage:
    snapshots: list[dict[str, Any]]
    """Current states of the jobs whose latest change is in the page, in change order."""
    position: int
    """Every wanted change up to here is in this page or an earlier one."""
    complete: bool
    """The page reached the end of the log: `position` is the log's end when it was read."""


def _contains(text: str) -> str:
    """An ILIKE pattern matching `text` literally: its own % _ and \\ are escaped."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def wanted(model: Any, where: ChangeFilter) -> list[ColumnElement[bool]]:
    """The filter's conditions on a job row, for the listing and the change feed alike."""
    conditions = []
    if where.viewer is not None:
        conditions.append(where.viewer.visible(model))
    if where.owner is not None:
        conditions.append(model.owner == where.owner)
    if where.county_id is not None:
        conditions.append(model.county_id == where.county_id)
    if where.status is not None:
        conditions.append(model.status == where.status.value)
    if where.created_after is not None:
        conditions.append(model.created_at >= where.created_after)
    if where.created_before is not None:
        conditions.append(model.created_at < where.created_before)
    if where.search is not None:
        pattern = _contains(where.search)
        conditions.append(
            or_(
                model.name.ilike(pattern, escape="\\"),
                model.description.ilike(pattern, escape="\\"),
            )
        )
    return conditions


def latest_changes(after: int, until: int, where: ChangeFilter) -> Select[Any]:
    """(seq, job id, kind) of each wanted job whose latest change is in (after, until].

    Joining on the job row's `change_seq` keeps one row per job, its latest, which holds
    the job's current status, so every filter applies to the job's current state.
    """
    parts = []
    for kind in where.kinds:
        model = KINDS[kind].model
        query = (
            select(JobChange.seq, JobChange.job_id, JobChange.kind)
            .join(model, and_(model.id == JobChange.job_id, model.change_seq == JobChange.seq))
            .where(JobChange.seq > after, JobChange.seq <= until, JobChange.kind == kind.value)
            .where(*wanted(model, where))
        )
        parts.append(query)
    keys = union_all(*parts).subquery()
    return select(keys.c.seq, keys.c.job_id, keys.c.kind).order_by(keys.c.seq)


async def log_end(sessions: SessionFactory) -> int:
    """The log's settled end (`jobs.changes.settled_end`); 0 for an empty log."""
    async with autocommit(sessions) as session:
        return int(await session.scalar(settled_end()) or 0)


async def read_changes(
    sessions: SessionFactory,
    after: int,
    where: ChangeFilter = EVERYTHING,
    *,
    limit: int | None = None,
) -> ChangePage:
    """One page of changes after `after`, as the jobs' current states.

    The log's settled end is read first: everything up to it is final, so the page covers
    (after, end] exactly. A job that moves again while the page is read is left
    for the page (or the live event) of its newer change, so no state is sent twice.
    """
    if not where.kinds:
        return ChangePage([], after, True)
    limit = limit or PAGE
    async with autocommit(sessions) as session:
        end = int(await session.scalar(settled_end()) or 0)
        keys = (await session.execute(latest_changes(after, end, where).limit(limit))).all()
        complete = len(keys) < limit
        position = end if complete else keys[-1].seq
        rows: dict[uuid.UUID, dict[str, Any]] = {}
        for kind in {JobKind(k.kind) for k in keys}:
            spec = KINDS[kind]
            ids = [k.job_id for k in keys if k.kind == kind.value]
            for row in await session.scalars(select(spec.model).where(spec.model.id.in_(ids))):
                if row.change_seq <= position:
                    rows[row.id] = snapshot(spec, row)
    ordered = [rows[k.job_id] for k in keys if k.job_id in rows]
    return ChangePage(ordered, max(position, after), complete)


async def running_jobs(
    sessions: SessionFactory, where: ChangeFilter, until: int
) -> list[dict[str, Any]]:
    """Current states of the wanted RUNNING jobs whose latest change is at or before `until`.

    Progress ticks are not logged, so a replay after `until` would leave such a job's
    progress as the client last saw it; there are few running jobs (workers x max jobs),
    so a resuming client gets them all, to show current progress at once.
    """
    if where.status not in (None, JobStatus.RUNNING):
        return []
    found = []
    async with sessions() as session:
        for kind in where.kinds:
            spec = KINDS[kind]
            model = spec.model
            rows = await session.scalars(
                select(model).where(
                    model.status == JobStatus.RUNNING.value,
                    model.change_seq <= until,
                    *wanted(model, where),
                )
            )
            found += [snapshot(spec, row) for row in rows]
    return sorted(found, key=lambda snap: int(snap["change_seq"]))


async def pages(
    sessions: SessionFactory, after: int, where: ChangeFilter = EVERYTHING
) -> AsyncIterator[ChangePage]:
    """Every page after `after`, up to the log's end as it is when the last one is read."""
    while True:
        page = await read_changes(sessions, after, where)
        yield page
        if page.complete:
            return
        after = page.position
