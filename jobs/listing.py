"""Relay-style pages of jobs across the four kinds' tables, in the order the client asks.

The page is a keyset over (order column, id): a cursor names the last row seen and the
order it was seen in, so a cursor of one order is refused for another rather than
silently skipping or repeating jobs. For a client that polls, `changedAfter` lists the
jobs changed since a change cursor instead, in change order (from the change log).
"""

from __future__ import annotations

import base64
import datetime as dt
import enum
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select, tuple_, union_all

from app.db import SessionFactory
from jobs.access import ADMIN, Caller, Forbidden
from jobs.change_feed import ChangeFilter, latest_changes, log_end, wanted
from jobs.changes import check_cursor
from jobs.changes import decode_cursor as decode_change_cursor
from jobs.changes import encode_cursor as encode_change_cursor
from jobs.lifecycle import snapshot
from jobs.registry import KINDS
from jobs.spec import BadInput, JobKind
from jobs.table import JobStatus

MAX_PAGE = 100
MAX_SEARCH = 200


class JobOrderField(enum.StrEnum):
    CREATED = "CREATED"
    UPDATED = "UPDATED"


class OrderDirection(enum.StrEnum):
    ASC = "ASC"
    DESC = "DESC"


@dataclass(frozen=True)
class JobOrder:
    field: JobOrderField = JobOrderField.CREATED
    direction: OrderDirection = OrderDirection.DESC

    @property
    def column(self) -> str:
        return "created_at" if self.field is JobOrderField.CREATED else "updated_at"


NEWEST_FIRST = JobOrder()


@dataclass(frozen=True)
class JobPage:
    snapshots: list[dict[str, Any]]
    cursors: list[str]
    has_next_page: bool
    total_count: int
    end_cursor: str | None = None
    """Where the next page starts; by default the last edge's cursor."""


def encode_cursor(order: JobOrder, at: dt.datetime, job_id: uuid.UUID) -> str:
    raw = json.dumps([order.field, order.direction, at.isoformat(), str(job_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str, order: JobOrder) -> tuple[dt.datetime, uuid.UUID]:
    try:
        field, direction, at, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        made_for = JobOrder(JobOrderField(field), OrderDirection(direction))
        # In UTC now: a forged date that cannot be (year 0 or 10000) is no cursor either.
        position = dt.datetime.fromisoformat(at).astimezone(dt.UTC), uuid.UUID(job_id)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadInput("after", "is not a cursor returned by this API") from exc
    if made_for != order:
        raise BadInput(
            "after",
            f"was returned for orderBy {{field: {made_for.field}, direction: "
            f"{made_for.direction}}}; page with that same orderBy, or start again without after",
        )
    return position


def _aware(value: dt.datetime | None, field: str) -> dt.datetime | None:
    if value is not None and value.utcoffset() is None:
        raise BadInput(field, "must carry a UTC offset, e.g. 2026-01-31T00:00:00Z")
    try:
        return value.astimezone(dt.UTC) if value is not None else None
    except OverflowError:
        raise BadInput(field, "must lie between years 1 and 9999 in UTC") from None


async def list_jobs(
    sessions: SessionFactory,
    *,
    caller: Caller,
    kind: JobKind | None,
    status: JobStatus | None,
    county_id: str | None,
    first: int,
    after: str | None,
    order: JobOrder = NEWEST_FIRST,
    created_after: dt.datetime | None = None,
    created_before: dt.datetime | None = None,
    owner: str | None = None,
    changed_after: str | None = None,
    retention_hours: float | None = None,
    search: str | None = None,
) -> JobPage:
    """The jobs the caller sees (`Caller.visible`: everyone's for admin) of the kinds it may read.

    Asking for a kind it may not read is FORBIDDEN; without a kind, the kinds it may not
    read are left out, and a caller that may read none is FORBIDDEN. `owner` picks one
    token's jobs: admins only, since anyone else sees only its own jobs anyway (asking
    for someone else's is FORBIDDEN rather than a silently empty page).
    `created_after` is inclusive and `created_before` exclusive, so windows tile.
    With `changed_after` (a change cursor) the page lists the jobs changed since, in change
    order; `after` is then a change cursor too. `search` matches name or description.
    """
    if not 1 <= first <= MAX_PAGE:
        raise BadInput("first", f"must be between 1 and {MAX_PAGE}")
    if county_id is not None and (len(county_id) > 64 or "\x00" in county_id):
        raise BadInput("countyId", "must be at most 64 characters, without NUL characters")
    if owner is not None and (len(owner) > 128 or "\x00" in owner):
        raise BadInput("owner", "must be at most 128 characters, without NUL characters")
    if search is not None and (not 1 <= len(search) <= MAX_SEARCH or "\x00" in search):
        raise BadInput("search", f"must be 1 to {MAX_SEARCH} characters, without NUL characters")
    if owner is not None and owner != caller.name and not caller.is_admin:
        raise Forbidden(ADMIN)
    created_after = _aware(created_after, "createdAfter")
    created_before = _aware(created_before, "createdBefore")
    if kind is not None:
        caller.require(kind, "read")
    readable = caller.readable_kinds()
    if not readable:
        raise Forbidden("<kind>:read for at least one kind")
    specs = [KINDS[kind]] if kind else [KINDS[k] for k in readable]
    where = ChangeFilter(
        kinds=[spec.kind for spec in specs],
        viewer=caller,
        owner=owner,
        county_id=county_id,
        status=status,
        created_after=created_after,
        created_before=created_before,
        search=search,
    )
    if changed_after is not None:
        if order != NEWEST_FIRST:
            raise BadInput("orderBy", "with changedAfter jobs come in change order; leave it out")
        return await _changed_jobs(
            sessions,
            where,
            decode_change_cursor(changed_after, "changedAfter"),
            None if after is None else decode_change_cursor(after, "after"),
            first,
            retention_hours,
        )
    position = decode_cursor(after, order) if after is not None else None
    parts = []
    for spec in specs:
        model = spec.model
        query = select(
            literal(spec.kind.value).label("kind"),
            model.id.label("id"),
            getattr(model, order.column).label("at"),
        )
        parts.append(query.where(*wanted(model, where)))
    jobs = union_all(*parts).subquery()
    keyset = tuple_(jobs.c.at, jobs.c.id)
    descending = order.direction is OrderDirection.DESC
    async with sessions() as session:
        total = await session.scalar(select(func.count()).select_from(jobs)) or 0
        page_query = select(jobs.c.kind, jobs.c.id, jobs.c.at)
        if position is not None:
            seen = tuple_(literal(position[0]), literal(position[1]))
            beyond: ColumnElement[bool] = keyset < seen if descending else keyset > seen
            page_query = page_query.where(beyond)
        sort = (jobs.c.at.desc(), jobs.c.id.desc()) if descending else (jobs.c.at.asc(), jobs.c.id)
        keys = (await session.execute(page_query.order_by(*sort).limit(first + 1))).all()
        has_next = len(keys) > first
        keys = keys[:first]
        rows: dict[uuid.UUID, dict[str, Any]] = {}
        for spec in specs:
            ids = [k.id for k in keys if k.kind == spec.kind.value]
            if ids:
                for row in await session.scalars(select(spec.model).where(spec.model.id.in_(ids))):
                    rows[row.id] = snapshot(spec, row)
    return JobPage(
        snapshots=[rows[k.id] for k in keys],
        cursors=[encode_cursor(order, k.at, k.id) for k in keys],
        has_next_page=has_next,
        total_count=total,
    )


async def _changed_jobs(
    sessions: SessionFactory,
    where: ChangeFilter,
    changed_after: int,
    after: int | None,
    first: int,
    retention_hours: float | None,
) -> JobPage:
    """Jobs whose latest change is after the cursor, oldest change first.

    Each edge's cursor is its job's change cursor. A job that changes again while the page
    is read is left for the next poll (where its newer change belongs). The last page ends
    at the log's end as read, so a client polling a quiet filter still moves forward.
    """
    await check_cursor(sessions, changed_after, retention_hours)
    start = max(changed_after, after or 0)
    end = await log_end(sessions)
    changed = latest_changes(start, end, where).subquery()
    async with sessions() as session:
        total = await session.scalar(select(func.count()).select_from(changed)) or 0
        keys = (
            await session.execute(select(changed).order_by(changed.c.seq).limit(first + 1))
        ).all()
        has_next = len(keys) > first
        keys = keys[:first]
        rows: dict[uuid.UUID, dict[str, Any]] = {}
        for kind in {JobKind(k.kind) for k in keys}:
            spec = KINDS[kind]
            ids = [k.job_id for k in keys if k.kind == kind.value]
            for row in await session.scalars(select(spec.model).where(spec.model.id.in_(ids))):
                if row.change_seq <= end:
                    rows[row.id] = snapshot(spec, row)
    found = [rows[k.job_id] for k in keys if k.job_id in rows]
    cursors = [encode_change_cursor(snap["change_seq"]) for snap in found]
    if has_next:
        end_cursor = encode_change_cursor(keys[-1].seq)
    else:
        end_cursor = encode_change_cursor(max(end, start))
    return JobPage(
        snapshots=found,
        cursors=cursors,
        has_next_page=has_next,
        total_count=total,
        end_cursor=end_cursor,
    )
