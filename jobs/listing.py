"""Relay-style pages of jobs across the four kinds' tables, newest first."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, literal, select, tuple_, union_all

from app.db import SessionFactory
from jobs.access import Caller, Forbidden
from jobs.lifecycle import snapshot
from jobs.registry import KINDS
from jobs.spec import BadInput, JobKind
from jobs.table import JobStatus

MAX_PAGE = 100


@dataclass(frozen=True)
class JobPage:
    snapshots: list[dict[str, Any]]
    cursors: list[str]
    has_next_page: bool
    total_count: int


def encode_cursor(created_at: dt.datetime, job_id: uuid.UUID) -> str:
    raw = json.dumps([created_at.isoformat(), str(job_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[dt.datetime, uuid.UUID]:
    try:
        created, job_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return dt.datetime.fromisoformat(created), uuid.UUID(job_id)
    except (ValueError, TypeError) as exc:
        raise BadInput("after", "is not a cursor returned by this API") from exc


async def list_jobs(
    sessions: SessionFactory,
    *,
    caller: Caller,
    kind: JobKind | None,
    status: JobStatus | None,
    county_id: str | None,
    first: int,
    after: str | None,
) -> JobPage:
    """The caller's jobs (everyone's for admin) of the kinds it may read.

    Asking for a kind it may not read is FORBIDDEN; without a kind, the kinds it may not
    read are left out, and a caller that may read none is FORBIDDEN.
    """
    if not 1 <= first <= MAX_PAGE:
        raise BadInput("first", f"must be between 1 and {MAX_PAGE}")
    if county_id is not None and (len(county_id) > 64 or "\x00" in county_id):
        raise BadInput("countyId", "must be at most 64 characters, without NUL characters")
    if kind is not None:
        caller.require(kind, "read")
    readable = caller.readable_kinds()
    if not readable:
        raise Forbidden("<kind>:read for at least one kind")
    specs = [KINDS[kind]] if kind else [KINDS[k] for k in readable]
    parts = []
    for spec in specs:
        model = spec.model
        query = select(
            literal(spec.kind.value).label("kind"),
            model.id.label("id"),
            model.created_at.label("created_at"),
        )
        if status is not None:
            query = query.where(model.status == status.value)
        if county_id is not None:
            query = query.where(model.county_id == county_id)
        if not caller.is_admin:
            query = query.where(model.owner == caller.name)
        parts.append(query)
    jobs = union_all(*parts).subquery()
    async with sessions() as session:
        total = await session.scalar(select(func.count()).select_from(jobs)) or 0
        page_query = select(jobs.c.kind, jobs.c.id, jobs.c.created_at)
        if after is not None:
            created, job_id = decode_cursor(after)
            page_query = page_query.where(
                tuple_(jobs.c.created_at, jobs.c.id) < tuple_(literal(created), literal(job_id))
            )
        keys = (
            await session.execute(
                page_query.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(first + 1)
            )
        ).all()
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
        cursors=[encode_cursor(k.created_at, k.id) for k in keys],
        has_next_page=has_next,
        total_count=total,
    )
