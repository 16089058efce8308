"""The worker runs its claim, heartbeat, progress and finish on asyncpg's own pool
(app.db.HotRows as `Lifecycle.writes`); every one must write exactly what the engine's
statement writes: the same row, column by column and type by type, the same change-log
rows, the same snapshot and the same events in the same order, and answer the same when it
changes nothing (a lost claim, a job no longer pending)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from arq.connections import ArqRedis
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from app.config import Settings
from app.db import DatabaseUnavailable, HotRows
from jobs.access import ANONYMOUS_ADMIN
from jobs.lifecycle import heartbeat_statement
from jobs.registry import KINDS
from jobs.spec import JobKind
from jobs.worker import is_transient
from tests.hot_pools import (
    change_log,
    lifecycles,
    received_events,
    stable,
    whole_row,
)

ROLL = {"report_type": "assessment_roll", "county_id": "TESTCO", "parameters": {}}
SPEC = KINDS[JobKind.REPORT]
RESULT = {
    "summary": {"parcels": 3, "big": 2**53 + 1, "text": "\u00e9 \u2013 \u2713"},
    "files": [{"name": "roll.csv", "size_bytes": 10, "row_count": None}],
    "list": [1, 2.5, None, True, {}],
}


async def test_a_run_writes_on_the_hot_pool_what_it_writes_on_the_engine(
    engine: AsyncEngine, county: str, settings: Settings, arq_redis: ArqRedis, hot: HotRows
) -> None:
    core, fast = lifecycles(engine, arq_redis, settings, hot)
    client = Redis.from_url(settings.redis_url or "")
    pubsub = client.pubsub()
    await pubsub.subscribe(settings.events_channel)
    try:
        runs = []
        for lifecycle in (core, fast):
            snap = await core.submit(JobKind.REPORT, ROLL, ANONYMOUS_ADMIN)
            runs.append((lifecycle, uuid.UUID(snap["id"]), uuid.uuid4()))
        steps: list[list[Any]] = [[], []]
        for n, (lifecycle, job_id, token) in enumerate(runs):
            answers = steps[n]
            answers.append(stable(await lifecycle.start(SPEC, job_id, token)))
            answers.append(await whole_row(engine, job_id))
            answers.append(stable(await lifecycle.start(SPEC, job_id, token)))  # not pending
            answers.append(await lifecycle.heartbeat(SPEC, job_id, token))
            answers.append(await lifecycle.heartbeat(SPEC, job_id, uuid.uuid4()))  # lost claim
            answers.append(await whole_row(engine, job_id))
            progress = await lifecycle.progress(SPEC, job_id, token, "writing roll", 2, 3, 50.0)
            answers.append(stable(progress))
            answers.append(await whole_row(engine, job_id))
            lost = await lifecycle.progress(SPEC, job_id, uuid.uuid4(), "x", None, None, 1.0)
            answers.append(lost)
            answers.append(stable(await lifecycle.complete(SPEC, job_id, token, RESULT)))
            answers.append(await whole_row(engine, job_id))
            answers.append(stable(await lifecycle.complete(SPEC, job_id, token, RESULT)))
            answers.append(await lifecycle.heartbeat(SPEC, job_id, token))  # finished
            answers.append(await change_log(engine, job_id))
        assert steps[0] == steps[1]
        assert steps[1][0]["status"] == "RUNNING" and steps[1][2] is None
        assert steps[1][3] is True and steps[1][4] is False
        assert steps[1][9]["result"] == RESULT
        received = await received_events(pubsub)
        events = [[stable(e) for e in received if e["id"] == str(job_id)] for _, job_id, _ in runs]
        assert events[0] == events[1]
        statuses = [e["status"] for e in events[1] if e is not None]
        assert statuses == ["PENDING", "RUNNING", "RUNNING", "COMPLETED"]
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_a_failed_run_writes_on_the_hot_pool_what_it_writes_on_the_engine(
    engine: AsyncEngine, county: str, settings: Settings, arq_redis: ArqRedis, hot: HotRows
) -> None:
    core, fast = lifecycles(engine, arq_redis, settings, hot)
    steps: list[list[Any]] = [[], []]
    for n, lifecycle in enumerate((core, fast)):
        job_id = uuid.UUID((await core.submit(JobKind.REPORT, ROLL, ANONYMOUS_ADMIN))["id"])
        token = uuid.uuid4()
        answers = steps[n]
        answers.append(stable(await lifecycle.start(SPEC, job_id, token)))
        answers.append(stable(await lifecycle.fail(SPEC, job_id, "X", "wrong", token=uuid.uuid4())))
        message = "the job failed unexpectedly (reference 0123456789ab) \u2013 \u00e9"
        answers.append(
            stable(await lifecycle.fail(SPEC, job_id, "INTERNAL_ERROR", message, token=token))
        )
        answers.append(await whole_row(engine, job_id))
        answers.append(await change_log(engine, job_id))
    assert steps[0] == steps[1]
    assert steps[1][1] is None and steps[1][2]["error"]["code"] == "INTERNAL_ERROR"


async def test_an_unreachable_server_is_a_transient_failure_of_the_run(
    engine: AsyncEngine,
) -> None:
    """What the worker retries the job on, as it does the engine's outages."""
    dead = create_async_engine(engine.url.set(host="127.0.0.1", port=9, query={}))
    writes = HotRows(dead, size=1)
    await writes.start()
    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await writes.count(heartbeat_statement(SPEC), {"id": uuid.uuid4(), "token": None})
        assert is_transient(caught.value)
    finally:
        await writes.close()
        await dead.dispose()
