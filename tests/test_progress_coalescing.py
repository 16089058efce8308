"""Progress writes are coalesced: at most one per PROGRESS_MIN_INTERVAL_SECONDS, the latest
value winning, none for a job that finishes inside the interval; final events still last."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import create_session_factory
from app.metrics import Metrics
from jobs.access import ANONYMOUS_ADMIN
from jobs.lifecycle import Lifecycle
from jobs.registry import KINDS, metric_kinds
from jobs.spec import JobKind
from jobs.worker import _Run
from tests.conftest import WorkerControl, serve_app
from tests.graphql_client import gql_data, subscribe
from tests.test_job_flow import WATCH, mutation

ROLL = {"report_type": "assessment_roll", "county_id": "TESTCO", "parameters": {}}


@pytest.fixture
async def arq_redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))
    yield pool
    await pool.aclose()


async def running_claim(engine: AsyncEngine, redis: ArqRedis, settings: Settings) -> _Run:
    """A job started as a worker starts it, and the worker's claim on it."""
    metrics = Metrics(CollectorRegistry(), metric_kinds())
    lifecycle = Lifecycle(create_session_factory(engine), redis, settings, metrics)
    snap = await lifecycle.submit(JobKind.REPORT, ROLL, ANONYMOUS_ADMIN)
    claim = _Run(lifecycle, KINDS[JobKind.REPORT], uuid.UUID(snap["id"]))
    assert await lifecycle.start(claim.spec, claim.job_id, claim.token) is not None
    return claim


async def row(engine: AsyncEngine, job_id: uuid.UUID) -> tuple[int, str, int | None]:
    async with engine.connect() as conn:
        version, step, processed = (
            await conn.execute(
                text(
                    "SELECT version, progress_step, progress_processed FROM report_jobs "
                    "WHERE report_id = :id"
                ),
                {"id": job_id},
            )
        ).one()
    return version, step, processed


async def test_reports_inside_the_interval_are_written_once_at_its_end_latest_first(
    engine: AsyncEngine, county: str, settings: Settings, arq_redis: ArqRedis
) -> None:
    settings = settings.model_copy(update={"progress_min_interval_seconds": 0.4})
    claim = await running_claim(engine, arq_redis, settings)
    started = await row(engine, claim.job_id)
    assert started[1] == "starting"
    await claim.report("loading", 1, 10, None)
    await claim.report("computing", 2, 10, None)
    await claim.report("writing", 5, 10, None)
    assert await row(engine, claim.job_id) == started  # nothing written inside the interval
    await asyncio.sleep(0.8)
    version, step, processed = await row(engine, claim.job_id)
    assert (step, processed) == ("writing", 5)
    assert version == started[0] + 1  # one write for the three reports
    await claim.report("writing", 6, 10, None)  # the interval has passed: written at once
    assert await row(engine, claim.job_id) == (version + 1, "writing", 6)
    await claim.report("writing", 7, 10, None)  # inside the next interval: kept, not written
    computed: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    computed.set_result("done")
    assert await claim.outcome(computed, 5) == "done"  # the job ended: pending progress dropped
    await asyncio.sleep(0.6)
    assert await row(engine, claim.job_id) == (version + 1, "writing", 6)


async def test_a_job_shorter_than_the_interval_sends_no_progress_ticks(
    engine: AsyncEngine, county: str, settings: Settings
) -> None:
    slow = settings.model_copy(update={"progress_min_interval_seconds": 60})
    worker = WorkerControl(slow)
    async with serve_app(slow) as app:
        job = (
            await gql_data(
                app.url,
                mutation("runReport"),
                {"input": {"reportType": "ASSESSMENT_ROLL", "countyId": county}},
            )
        )["runReport"]
        try:
            async with subscribe(app.ws_url, WATCH, {"id": job["id"]}) as sub:
                first = await sub.next()
                await worker.start()
                rest = await sub.collect(timeout=60)
        finally:
            await worker.stop()
    updates = [p["data"]["jobUpdated"] for p in [first, *rest]]  # type: ignore[index]
    assert [(u["status"], u["progress"]["step"]) for u in updates] == [
        ("PENDING", None),
        ("RUNNING", "starting"),
        ("COMPLETED", "done"),
    ]
