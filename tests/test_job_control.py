"""Cancel, retry, priority, scheduling, idempotency and expiry, end to end over GraphQL."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.demo_data import load_demo_county
from app.events import Subscription
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import gql, gql_data, subscribe
from tests.test_job_flow import WATCH, mutation

ROLL = {"reportType": "ASSESSMENT_ROLL", "countyId": "TESTCO"}
CANCEL = "mutation($id: ID!) { cancelJob(id: $id) { id status } }"
STATUS = """query($id: ID!) { job(id: $id) { status attempts startedAt scheduledFor expiresAt
    message error { code } } }"""


async def submit(app: RunningApp, name: str, input: dict[str, Any]) -> dict[str, Any]:
    return dict((await gql_data(app.url, mutation(name), {"input": input}))[name])


async def job_rows(engine: AsyncEngine, table: str) -> list[Any]:
    async with engine.connect() as conn:
        return list((await conn.execute(text(f"SELECT * FROM {table}"))).mappings().all())


async def test_cancelling_a_running_export_stops_it_and_removes_its_file(
    app_server: RunningApp, worker: WorkerControl, engine: AsyncEngine, settings: Settings
) -> None:
    await load_demo_county(engine, "BIGCO", 5000, seed=3)
    job = await submit(
        app_server,
        "runGisExport",
        {
            "exportFormat": "GEOJSON",
            "countyId": "BIGCO",
            "layers": ["PARCELS", "SALES"],
            "parameters": {"batchSize": 100},
        },
    )
    async with subscribe(app_server.ws_url, WATCH, {"id": job["id"]}) as sub:
        await worker.start()
        while True:
            update = (await sub.next(timeout=60))["data"]["jobUpdated"]  # type: ignore[index]
            if update["progress"]["step"] == "writing features":
                break
        assert (settings.resolved_results_dir / job["id"]).is_dir()
        cancelled_at = asyncio.get_running_loop().time()
        answer = (await gql_data(app_server.url, CANCEL, {"id": job["id"]}))["cancelJob"]
        assert answer["status"] == "CANCELLED"
        rest = await sub.collect(timeout=30)
    statuses = [e["data"]["jobUpdated"]["status"] for e in rest]
    assert statuses[-1] == "CANCELLED" and "COMPLETED" not in statuses
    # The worker lets go within a heartbeat or a batch: no file is left behind.
    for _ in range(100):
        if not (settings.resolved_results_dir / job["id"]).exists():
            break
        await asyncio.sleep(0.05)
    assert not (settings.resolved_results_dir / job["id"]).exists()
    assert asyncio.get_running_loop().time() - cancelled_at < 5
    final = (await gql_data(app_server.url, STATUS, {"id": job["id"]}))["job"]
    assert final["status"] == "CANCELLED" and final["expiresAt"] is not None


async def test_higher_priority_starts_before_lower_priority_queued_earlier(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    low = [await submit(app_server, "runReport", {**ROLL, "priority": 0}) for _ in range(3)]
    high = await submit(app_server, "runReport", {**ROLL, "priority": 9})
    await worker.start(max_jobs=1)
    ids = [j["id"] for j in [*low, high]]
    # Generous for a loaded 2-core CI machine; the wait ends as soon as all four are done.
    for _ in range(2400):
        rows = await job_rows(engine, "report_jobs")
        if all(r["status"] == "COMPLETED" for r in rows):
            break
        await asyncio.sleep(0.05)
    assert all(r["status"] == "COMPLETED" for r in rows), [r["status"] for r in rows]
    started = {str(r["report_id"]): r["started_at"] for r in rows}
    order = sorted(ids, key=lambda i: started[i])
    assert order[0] == high["id"], order
    assert order[1:] == [j["id"] for j in low]


async def test_scheduled_job_stays_pending_until_its_time(
    app_server: RunningApp, worker: WorkerControl, county: str
) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=3)
    job = await submit(app_server, "runReport", {**ROLL, "scheduledFor": when.isoformat()})
    await worker.start()
    await asyncio.sleep(1.5)
    early = (await gql_data(app_server.url, STATUS, {"id": job["id"]}))["job"]
    assert early["status"] == "PENDING" and early["startedAt"] is None
    async with subscribe(app_server.ws_url, WATCH, {"id": job["id"]}) as sub:
        events = await sub.collect(timeout=30)
    assert events[-1]["data"]["jobUpdated"]["status"] == "COMPLETED"
    final = (await gql_data(app_server.url, STATUS, {"id": job["id"]}))["job"]
    assert dt.datetime.fromisoformat(final["startedAt"]) >= when


async def test_idempotency_key_returns_the_same_job_and_refuses_other_input(
    app_server: RunningApp, county: str, engine: AsyncEngine, redis: Redis, settings: Settings
) -> None:
    first = await submit(app_server, "runReport", {**ROLL, "idempotencyKey": "roll-2024"})
    again = await submit(app_server, "runReport", {**ROLL, "idempotencyKey": "roll-2024"})
    assert again["id"] == first["id"]
    other = await gql(
        app_server.url,
        mutation("runReport"),
        {
            "input": {
                **ROLL,
                "parameters": {"assessmentRoll": {"taxYear": 2021}},
                "idempotencyKey": "roll-2024",
            }
        },
    )
    (error,) = other["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert "idempotencyKey" in error["message"] and first["id"] in error["message"]
    assert len(await job_rows(engine, "report_jobs")) == 1
    assert await redis.zcard(settings.queue_name) == 1
    fresh = await submit(app_server, "runReport", {**ROLL, "idempotencyKey": "roll-2024-b"})
    assert fresh["id"] != first["id"]


async def test_concurrent_requests_with_one_key_make_one_job(
    app_server: RunningApp, county: str, engine: AsyncEngine
) -> None:
    answers = await asyncio.gather(
        *(submit(app_server, "runReport", {**ROLL, "idempotencyKey": "burst"}) for _ in range(8))
    )
    assert len({a["id"] for a in answers}) == 1
    assert len(await job_rows(engine, "report_jobs")) == 1


async def test_expired_jobs_and_files_are_swept_without_events(
    app_server: RunningApp,
    worker: WorkerControl,
    county: str,
    engine: AsyncEngine,
    settings: Settings,
) -> None:
    keep = await submit(app_server, "runReport", {**ROLL, "retentionDays": 7})
    old = await submit(app_server, "runReport", {**ROLL, "retentionDays": 1})
    await worker.start()
    for job in (keep, old):
        async with subscribe(app_server.ws_url, WATCH, {"id": job["id"]}) as sub:
            assert (await sub.collect())[-1]["data"]["jobUpdated"]["status"] == "COMPLETED"
    assert (settings.resolved_results_dir / old["id"]).is_dir()
    status = (await gql_data(app_server.url, STATUS, {"id": keep["id"]}))["job"]
    expires = dt.datetime.fromisoformat(status["expiresAt"])
    assert dt.timedelta(days=6.9) < expires - dt.datetime.now(dt.UTC) < dt.timedelta(days=7.1)
    await worker.stop()
    # Two days pass for the 1-day job: its expiry moves into the past.
    async with engine.begin() as conn:
        await conn.execute(
            text(
                "UPDATE report_jobs SET expires_at = now() - interval '1 day' WHERE report_id = :i"
            ),
            {"i": old["id"]},
        )
    feed = "subscription { jobsUpdated { id status } }"
    async with subscribe(app_server.ws_url, feed) as events:
        for _ in range(200):
            if app_server.app.state.bus.subscriber_count:
                break
            await asyncio.sleep(0.01)
        sweeping = WorkerControl(settings.model_copy(update={"sweep_interval_seconds": 0.001}))
        await sweeping.start()
        for _ in range(1200):
            if len(await job_rows(engine, "report_jobs")) == 1:
                break
            await asyncio.sleep(0.05)
        await sweeping.stop()
        with pytest.raises(TimeoutError):
            await events.next(timeout=0.5)
    rows = await job_rows(engine, "report_jobs")
    assert [str(r["report_id"]) for r in rows] == [keep["id"]]
    assert not (settings.resolved_results_dir / old["id"]).exists()
    assert (settings.resolved_results_dir / keep["id"]).is_dir()
    assert (await gql_data(app_server.url, STATUS, {"id": old["id"]}))["job"] is None


@pytest.mark.parametrize(
    ("field", "value"),
    [("priority", 10), ("priority", -1), ("retentionDays", 0), ("idempotencyKey", "")],
)
async def test_bad_controls_are_refused(
    app_server: RunningApp, county: str, engine: AsyncEngine, field: str, value: object
) -> None:
    body = await gql(app_server.url, mutation("runReport"), {"input": {**ROLL, field: value}})
    (error,) = body["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert field in error["message"]
    assert await job_rows(engine, "report_jobs") == []


def test_a_slow_subscriber_keeps_final_events_and_stays_bounded() -> None:
    sub = Subscription(lambda event: True, maxsize=10)
    for version in range(1, 1000):
        sub.offer({"id": "j", "version": version, "status": "RUNNING"})
    sub.offer({"id": "j", "version": 1000, "status": "COMPLETED"})
    queued = list(sub._events)
    assert len(queued) == 10
    assert queued[-1] == {"id": "j", "version": 1000, "status": "COMPLETED"}
    versions = [e["version"] for e in queued]
    assert versions == sorted(versions) and versions[0] > 990
    assert sub.dropped == 990
