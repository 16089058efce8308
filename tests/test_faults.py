"""Faults: workers killed mid-job, Redis restarted empty, database connections dropped.

Workers here are real `terrafusion worker` processes; the Redis is one the test starts
itself (never the machine's shared one), so it can be stopped and started again.
"""

from __future__ import annotations

import asyncio
import collections
import signal
from pathlib import Path
from typing import Any

import httpx
from arq import Worker
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.demo_data import load_demo_county
from app.embedded import EmbeddedPostgres, EmbeddedRedis
from app.migrate import upgrade
from jobs.arq_claims import in_progress_ttl_ms
from jobs.worker import worker_settings
from tests.conftest import RunningApp, Workers, serve_app
from tests.graphql_client import gql, gql_data, subscribe
from tests.test_job_flow import WATCH, mutation

JOB_TABLES = ("report_jobs", "market_analysis_jobs", "gis_export_jobs", "valuation_jobs")
FINAL = {"COMPLETED", "FAILED", "CANCELLED"}


async def rows(engine: AsyncEngine) -> list[dict[str, Any]]:
    found = []
    async with engine.connect() as conn:
        for table in JOB_TABLES:
            result = await conn.execute(text(f"SELECT *, '{table}' AS tbl FROM {table}"))
            found += [dict(r) for r in result.mappings().all()]
    return found


async def wait_until_final(engine: AsyncEngine, count: int, timeout: float) -> list[dict[str, Any]]:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await rows(engine)
        if len(found) >= count and all(r["status"] in FINAL for r in found):
            return found
        if asyncio.get_running_loop().time() > deadline:
            states = collections.Counter(r["status"] for r in found)
            raise AssertionError(f"jobs not final after {timeout}s: {states}")
        await asyncio.sleep(0.2)


async def export_job(app: RunningApp, county: str) -> str:
    job = await gql_data(
        app.url,
        mutation("runGisExport"),
        {
            "input": {
                "exportFormat": "GEOJSON",
                "countyId": county,
                "layers": ["PARCELS", "SALES"],
                "parameters": {"batchSize": 100},
            }
        },
    )
    return str(job["runGisExport"]["id"])


async def wait_for_progress(app: RunningApp, job_id: str) -> None:
    async with subscribe(app.ws_url, WATCH, {"id": job_id}) as sub:
        while True:
            update = (await sub.next(timeout=60))["data"]["jobUpdated"]  # type: ignore[index]
            if update["progress"]["step"] == "writing features":
                return


async def test_a_worker_killed_mid_job_is_replaced_and_the_job_completes_once(
    fault_app: RunningApp, workers: Workers, engine: AsyncEngine, fault_settings: Settings
) -> None:
    await load_demo_county(engine, "BIGCO", 5000, seed=3)
    job_id = await export_job(fault_app, "BIGCO")
    feed_query = "subscription { jobsUpdated { id status version } }"
    async with subscribe(fault_app.ws_url, feed_query) as feed:
        victim = workers.start()
        await wait_for_progress(fault_app, job_id)
        victim.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.wait, 20)
        workers.start()
        (final,) = await wait_until_final(engine, 1, timeout=90)
        seen = []
        while not seen or seen[-1]["status"] not in FINAL:
            seen.append((await feed.next(timeout=30))["data"]["jobsUpdated"])  # type: ignore[index]
    assert final["status"] == "COMPLETED", final
    assert final["attempts"] == 2
    assert [s["status"] for s in seen].count("COMPLETED") == 1
    assert "worker lost" in " ".join(str(s) for s in seen) or final["attempts"] == 2
    files = list((fault_settings.resolved_results_dir / job_id).iterdir())
    assert [f.name for f in files] == ["parcels_BIGCO.geojson"]
    assert final["record_count"] == 5000


async def test_sigterm_hands_a_running_job_back_at_once(
    fault_app: RunningApp, workers: Workers, engine: AsyncEngine
) -> None:
    await load_demo_county(engine, "BIGCO", 5000, seed=3)
    job_id = await export_job(fault_app, "BIGCO")
    first = workers.start()
    await wait_for_progress(fault_app, job_id)
    first.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(first.wait, 30) == 0
    (row,) = await rows(engine)
    assert row["status"] == "PENDING" and row["message"] == "worker stopped; queued again"
    workers.start()
    (final,) = await wait_until_final(engine, 1, timeout=90)
    assert final["status"] == "COMPLETED" and final["attempts"] == 2


async def test_redis_restarting_empty_loses_no_job(
    fault_app: RunningApp,
    workers: Workers,
    engine: AsyncEngine,
    own_redis: EmbeddedRedis,
    county: str,
) -> None:
    # Queued while no worker runs, then Redis restarts empty: the queue is gone.
    ids = [
        (
            await gql_data(
                fault_app.url,
                mutation("runReport"),
                {"input": {"reportType": "ASSESSMENT_ROLL", "countyId": county}},
            )
        )["runReport"]["id"]
        for _ in range(5)
    ]
    own_redis.stop()
    own_redis.start()
    async with subscribe(fault_app.ws_url, WATCH, {"id": ids[0]}) as sub:
        first = (await sub.next())["data"]["jobUpdated"]  # type: ignore[index]
        assert first["status"] == "PENDING"
        workers.start()
        final = (await sub.collect(timeout=60))[-1]["data"]["jobUpdated"]
    assert final["status"] == "COMPLETED"
    done = await wait_until_final(engine, 5, timeout=60)
    assert {str(r["report_id"]) for r in done} == set(ids)
    assert {r["status"] for r in done} == {"COMPLETED"}


async def test_dropped_database_connections_are_retried(
    fault_app: RunningApp, workers: Workers, engine: AsyncEngine, fault_settings: Settings
) -> None:
    await load_demo_county(engine, "BIGCO", 5000, seed=3)
    job_id = await export_job(fault_app, "BIGCO")
    workers.start()
    await wait_for_progress(fault_app, job_id)
    database = engine.url.database
    async with engine.connect() as conn:
        await conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :db AND pid <> pg_backend_pid() AND application_name = ''"
                " AND state = 'active'"
            ),
            {"db": database},
        )
    (final,) = await wait_until_final(engine, 1, timeout=90)
    assert final["status"] == "COMPLETED", final
    assert final["record_count"] == 5000


async def wait_for_start_blocked(engine: AsyncEngine, timeout: float) -> int:
    """The backend pid of a worker's `Lifecycle.start` UPDATE, once it waits on our lock."""
    deadline = asyncio.get_running_loop().time() + timeout
    waiting = text(
        "SELECT min(pid) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' "
        "AND query ILIKE '%UPDATE report_jobs SET status%'"
    )
    while True:
        async with engine.connect() as conn:
            pid = await conn.scalar(waiting)
            if pid:
                return int(pid)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no worker tried to start the job within {timeout}s")
        await asyncio.sleep(0.1)


def test_the_claim_age_is_read_against_arqs_own_in_progress_ttl(settings: Settings) -> None:
    worker = Worker(**worker_settings(settings))
    assert in_progress_ttl_ms(settings) == worker.in_progress_timeout_s * 1000


async def test_a_worker_killed_after_arqs_claim_before_running_loses_no_job(
    fault_app: RunningApp,
    workers: Workers,
    engine: AsyncEngine,
    fault_settings: Settings,
    county: str,
) -> None:
    # The test holds the job's row lock, so the worker's claim (arq's in-progress key) is
    # taken but its RUNNING update waits; the worker dies right there. Its UPDATE never
    # commits, the row stays PENDING, and arq's key outlives it by about an hour.
    report = await gql_data(
        fault_app.url,
        mutation("runReport"),
        {"input": {"reportType": "ASSESSMENT_ROLL", "countyId": county}},
    )
    job_id = report["runReport"]["id"]
    redis = Redis.from_url(fault_settings.redis_url or "")
    try:
        async with engine.connect() as lock:
            await lock.execute(
                text("SELECT 1 FROM report_jobs WHERE report_id = :id FOR UPDATE"), {"id": job_id}
            )
            victim = workers.start()
            backend = await wait_for_start_blocked(engine, timeout=30)
            victim.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait, 20)
            # PostgreSQL notices the dead client only once the UPDATE gets its lock (and may
            # commit it first); ending the backend now is what a dead client's end comes to.
            async with engine.connect() as conn:
                await conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": backend})
            await lock.rollback()
        assert await redis.exists(in_progress_key_prefix + job_id)
    finally:
        await redis.aclose()
    (row,) = await rows(engine)
    assert row["status"] == "PENDING" and row["attempts"] == 0, row
    async with subscribe(fault_app.ws_url, WATCH, {"id": job_id}) as sub:
        workers.start()
        (final,) = await wait_until_final(engine, 1, timeout=45)
        seen = [p["data"]["jobUpdated"]["status"] for p in await sub.collect(timeout=30)]  # type: ignore[index]
    assert final["status"] == "COMPLETED" and final["attempts"] == 1, (final["attempts"], seen)
    assert seen.count("COMPLETED") == 1 and seen[-1] == "COMPLETED", seen


async def test_hundred_jobs_survive_two_worker_kills_and_a_redis_restart(
    fault_app: RunningApp,
    workers: Workers,
    engine: AsyncEngine,
    own_redis: EmbeddedRedis,
    county: str,
) -> None:
    inputs = [
        ("runReport", {"reportType": "ASSESSMENT_ROLL", "countyId": county}),
        ("runReport", {"reportType": "SALES_RATIO_STUDY", "countyId": county}),
        ("runMarketAnalysis", {"analysisType": "PRICE_TREND", "countyId": county}),
        ("runGisExport", {"exportFormat": "CSV", "countyId": county, "layers": ["PARCELS"]}),
    ]
    feed_query = "subscription { jobsUpdated { id status version } }"
    finals: collections.Counter[str] = collections.Counter()
    async with subscribe(fault_app.ws_url, feed_query) as feed:

        async def watch() -> None:
            while True:
                event = (await feed.next(timeout=300))["data"]["jobsUpdated"]  # type: ignore[index]
                if event["status"] in FINAL:
                    finals[event["id"]] += 1

        watcher = asyncio.create_task(watch())
        first, second = workers.start(), workers.start()
        ids = []
        for i in range(100):
            name, input = inputs[i % len(inputs)]
            ids.append(
                (await gql_data(fault_app.url, mutation(name), {"input": input}))[name]["id"]
            )
            if i == 30:
                first.send_signal(signal.SIGKILL)
                workers.start()
            if i == 55:
                own_redis.stop()
                own_redis.start()
            if i == 75:
                second.send_signal(signal.SIGKILL)
                workers.start()
        done = await wait_until_final(engine, 100, timeout=180)
        await asyncio.sleep(1)
        watcher.cancel()
    states = collections.Counter(r["status"] for r in done)
    duplicated = [job for job, n in finals.items() if n > 1]
    print(f"\n100 mixed jobs: {dict(states)}; jobs with two final events: {len(duplicated)}")
    assert len(done) == 100 and {str(r.get("report_id") or r.get("job_id")) for r in done} == set(
        ids
    )
    assert states["COMPLETED"] + states["FAILED"] == 100
    for row in done:
        if row["status"] == "FAILED":
            assert row["error_code"] in {"WORKER_LOST", "TRANSIENT_ERROR"}, row
    assert duplicated == []


async def test_api_answers_clearly_while_postgres_is_down_and_recovers(
    data_dir: Path, settings: Settings
) -> None:
    # A PostgreSQL of the test's own, in the session folder that the embedded server's
    # system user may enter (pytest's tmp_path is private to root).
    folder = data_dir / "restartable-pg"
    pg = EmbeddedPostgres(folder)
    await asyncio.to_thread(upgrade, pg.url)
    query = "{ counties { countyId } }"
    async with serve_app(settings.model_copy(update={"database_url": pg.url})) as app:
        assert (await gql_data(app.url, query)) == {"counties": []}
        pg.stop()
        try:
            down = await gql(app.url, query)
            (error,) = down["errors"]
            assert error["extensions"]["code"] == "SERVICE_UNAVAILABLE", error
            assert "Traceback" not in str(down) and "SELECT" not in str(down)
            async with httpx.AsyncClient(base_url=app.url) as client:
                health = await client.get("/healthz")
            assert health.status_code == 503 and health.json()["database"] != "ok"
        finally:
            pg = EmbeddedPostgres(folder)
        assert (await gql_data(app.url, query)) == {"counties": []}
    pg.stop()
