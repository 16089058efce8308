"""What the tests of asyncpg's own pools (app.db.HotRows) share: the two ways to build a
`Lifecycle`, and everything a job's writes leave behind, compared between the two."""

from __future__ import annotations

import json
import uuid
from typing import Any

from arq.connections import ArqRedis
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import CoreRows, HotRows, create_session_factory
from app.metrics import Metrics
from jobs.changes import JobChange
from jobs.lifecycle import Lifecycle, row_by_id
from jobs.registry import KINDS, metric_kinds
from jobs.spec import JobKind

VOLATILE = {
    "id",
    "run_token",
    "change_seq",
    "created_at",
    "updated_at",
    "started_at",
    "heartbeat_at",
    "completed_at",
    "expires_at",
    "last_retry_at",
}
"""What differs between two jobs however they are written: their ids, tokens and times."""


def lifecycles(
    engine: AsyncEngine, redis: ArqRedis, settings: Settings, hot: HotRows
) -> tuple[Lifecycle, Lifecycle]:
    """The engine's way, and the pool's (as app.main.create_app and the worker build it)."""
    sessions = create_session_factory(engine)
    metrics = Metrics(CollectorRegistry(), metric_kinds())
    return (
        Lifecycle(sessions, redis, settings, metrics),
        Lifecycle(sessions, redis, settings, metrics, rows=hot, writes=hot),
    )


def stable(snap: dict[str, Any] | None) -> dict[str, Any] | None:
    if snap is None:
        return None
    return {key: value for key, value in snap.items() if key not in VOLATILE}


async def whole_row(
    engine: AsyncEngine, job_id: uuid.UUID | str, kind: JobKind = JobKind.REPORT
) -> dict[str, tuple[Any, type]]:
    """The job's whole row as the engine reads it, each value with its type."""
    sessions = create_session_factory(engine)
    row = await CoreRows(sessions).one(row_by_id(KINDS[kind]), {"id": uuid.UUID(str(job_id))})
    assert row is not None
    return {
        name: (None if name in VOLATILE else getattr(row, name), type(getattr(row, name)))
        for name in row._fields
    }


async def change_log(engine: AsyncEngine, job_id: uuid.UUID | str) -> list[tuple[Any, ...]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(
                JobChange.kind,
                JobChange.county_id,
                JobChange.owner,
                JobChange.status,
                JobChange.version,
            )
            .where(JobChange.job_id == uuid.UUID(str(job_id)))
            .order_by(JobChange.seq)
        )
        return [tuple(row) for row in rows]


async def received_events(pubsub: Any) -> list[dict[str, Any]]:
    """Every event the subscription has received, in order."""
    events = []
    while (message := await pubsub.get_message(timeout=0.5)) is not None:
        if message["type"] == "message":
            events.append(json.loads(message["data"]))
    return events
