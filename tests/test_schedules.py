"""Recurring schedules through GraphQL and the workers' maintenance, against the real
servers: cron and zone validation, next runs across DST, pause and resume, one job per due
time however many ticks race, and a run missed while no worker ran made up once, late."""

from __future__ import annotations

import asyncio
import datetime as dt
import zoneinfo
from collections.abc import AsyncIterator
from typing import Any

import pytest
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from prometheus_client import CollectorRegistry
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from app.config import Settings
from app.db import create_engine, create_session_factory
from app.metrics import Metrics
from jobs.access import ANONYMOUS_ADMIN, Caller
from jobs.lifecycle import Lifecycle
from jobs.maintenance import Tally, run_schedules
from jobs.registry import metric_kinds
from jobs.schedules import due_after, latest_due, run_due_schedules
from tests.builders import issue_token
from tests.conftest import RunningApp, WorkerControl
from tests.graphql_client import bearer, gql, gql_data

CHICAGO = zoneinfo.ZoneInfo("America/Chicago")
UTC = dt.UTC
SCHEDULE = (
    "id templateId kind owner cron timezone paused nextRunAt lastDueAt lastJobId lastError "
    "description"
)
TEMPLATE = """
mutation($input: JobRunInput!) { createJobTemplate(name: "Roll", input: $input) { id } }"""
CREATE = f"""
mutation($t: ID!, $cron: String!, $tz: String!) {{
  createSchedule(templateId: $t, cron: $cron, timezone: $tz) {{ {SCHEDULE} }}
}}"""
UPCOMING = "query($id: ID!, $n: Int!) { schedule(id: $id) { upcomingRuns(count: $n) } }"
PAUSE = f"mutation($id: ID!) {{ pauseSchedule(id: $id) {{ {SCHEDULE} }} }}"
RESUME = f"mutation($id: ID!) {{ resumeSchedule(id: $id) {{ {SCHEDULE} }} }}"
DELETE = "mutation($id: ID!) { deleteSchedule(id: $id) }"
DELETE_TEMPLATE = "mutation($id: ID!) { deleteJobTemplate(id: $id) }"
LIST = f"query($t: ID) {{ schedules(templateId: $t) {{ {SCHEDULE} }} }}"
ONE = f"query($id: ID!) {{ schedule(id: $id) {{ {SCHEDULE} }} }}"
JOBS = """
query { jobs(first: 50) { totalCount edges { node {
  id status templateId scheduleId late scheduledFor
} } } }"""
ROLL = {"report": {"countyId": "TESTCO", "reportType": "ASSESSMENT_ROLL"}}


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).astimezone(UTC)


def error(body: dict[str, Any]) -> tuple[str, str | None]:
    assert body.get("errors"), body
    extensions = body["errors"][0]["extensions"]
    return extensions["code"], extensions.get("field")


async def new_template(url: str, **headers: str) -> str:
    body = await gql(url, TEMPLATE, {"input": ROLL}, **headers)
    return str(body["data"]["createJobTemplate"]["id"])


async def scheduled_jobs(url: str, **headers: str) -> list[dict[str, Any]]:
    body = await gql(url, JOBS, **headers)
    assert "errors" not in body, body
    return [e["node"] for e in body["data"]["jobs"]["edges"] if e["node"]["scheduleId"]]


def test_next_runs_follow_cron_across_dst_in_chicago() -> None:
    # Spring forward (2026-03-08): 02:30 does not exist; cron runs at 03:00 CDT instead.
    after = dt.datetime(2026, 3, 7, 12, tzinfo=UTC)
    assert due_after("30 2 * * *", "America/Chicago", after, 3) == [
        dt.datetime(2026, 3, 8, 8, 0, tzinfo=UTC),
        dt.datetime(2026, 3, 9, 7, 30, tzinfo=UTC),
        dt.datetime(2026, 3, 10, 7, 30, tzinfo=UTC),
    ]
    # Fall back (2026-11-01): 01:30 happens twice; cron runs once, at the first.
    after = dt.datetime(2026, 10, 31, 12, tzinfo=UTC)
    assert due_after("30 1 * * *", "America/Chicago", after, 3) == [
        dt.datetime(2026, 11, 1, 6, 30, tzinfo=UTC),
        dt.datetime(2026, 11, 2, 7, 30, tzinfo=UTC),
        dt.datetime(2026, 11, 3, 7, 30, tzinfo=UTC),
    ]
    # Hourly through the fall-back night: the repeated hour is one more real hour.
    night = due_after("0 * * * *", "America/Chicago", dt.datetime(2026, 11, 1, 5, tzinfo=UTC), 3)
    assert [t.hour for t in night] == [6, 7, 8]
    # The latest due time at or before a moment is that moment when it is one.
    first = dt.datetime(2026, 3, 1, 12, tzinfo=UTC)  # 06:00 CST
    assert latest_due("0 6 1 * *", "America/Chicago", first) == first
    assert latest_due("0 6 1 * *", "America/Chicago", first - dt.timedelta(seconds=1)) == (
        dt.datetime(2026, 2, 1, 12, tzinfo=UTC)
    )


async def test_schedule_crud_and_monthly_runs_across_dst(
    app_server: RunningApp, county: str
) -> None:
    url = app_server.url
    template = await new_template(url)
    before = dt.datetime.now(UTC)
    made = await gql_data(
        url, CREATE, {"t": template, "cron": "0 6 1 * *", "tz": "America/Chicago"}
    )
    schedule = made["createSchedule"]
    assert (schedule["templateId"], schedule["kind"], schedule["paused"]) == (
        template,
        "REPORT",
        False,
    )
    assert schedule["description"] == "At 06:00 on the first day of every month (America/Chicago)"
    assert schedule["lastDueAt"] is None and schedule["lastError"] is None
    next_run = utc(schedule["nextRunAt"])
    assert next_run > before
    assert next_run == due_after("0 6 1 * *", "America/Chicago", before)[0]

    # A year of monthly runs: 06:00 in Chicago each time, 11:00 UTC under CDT, 12:00 under CST.
    runs = [utc(t) for t in (await gql_data(url, UPCOMING, {"id": schedule["id"], "n": 12}))[
        "schedule"
    ]["upcomingRuns"]]  # fmt: skip
    assert runs[0] == next_run and runs == sorted(runs)
    local = [t.astimezone(CHICAGO) for t in runs]
    assert all((t.day, t.hour, t.minute) == (1, 6, 0) for t in local)
    assert len({t.month for t in local}) == 12
    for t in runs:
        summer = t.astimezone(CHICAGO).utcoffset() == dt.timedelta(hours=-5)
        assert t.hour == (11 if summer else 12)
    assert {t.hour for t in runs} == {11, 12}
    body = await gql(url, UPCOMING, {"id": schedule["id"], "n": 0})
    assert error(body) == ("BAD_USER_INPUT", "count")

    active = (await gql_data(url, RESUME, {"id": schedule["id"]}))["resumeSchedule"]
    assert active["paused"] is False and utc(active["nextRunAt"]) == next_run
    paused = (await gql_data(url, PAUSE, {"id": schedule["id"]}))["pauseSchedule"]
    assert paused["paused"] is True and paused["nextRunAt"] is None
    resumed = (await gql_data(url, RESUME, {"id": schedule["id"]}))["resumeSchedule"]
    assert resumed["paused"] is False and utc(resumed["nextRunAt"]) == next_run

    listed = (await gql_data(url, LIST, {"t": template}))["schedules"]
    assert [s["id"] for s in listed] == [schedule["id"]]
    assert (await gql_data(url, LIST, {"t": None}))["schedules"] == listed

    # A template that a schedule runs is not deleted from under it.
    refused = await gql(url, DELETE_TEMPLATE, {"id": template})
    assert error(refused) == ("BAD_USER_INPUT", "id")
    assert (await gql_data(url, DELETE, {"id": schedule["id"]}))["deleteSchedule"] == schedule["id"]
    assert (await gql_data(url, ONE, {"id": schedule["id"]}))["schedule"] is None
    assert error(await gql(url, PAUSE, {"id": schedule["id"]}))[0] == "NOT_FOUND"
    assert (await gql_data(url, DELETE_TEMPLATE, {"id": template}))["deleteJobTemplate"]


BAD_SCHEDULES = [
    ("six fields", "0 0 6 1 * *", "UTC", "cron"),
    ("four fields", "0 6 1 *", "UTC", "cron"),
    ("minute out of range", "61 * * * *", "UTC", "cron"),
    ("not cron", "every monday", "UTC", "cron"),
    ("no such day", "0 6 31 2 *", "UTC", "cron"),
    ("unknown zone", "0 6 1 * *", "America/Springfield", "timezone"),
    ("not a zone", "0 6 1 * *", "../etc/passwd", "timezone"),
]


@pytest.mark.parametrize(
    ("case", "cron", "tz", "field"), BAD_SCHEDULES, ids=[c[0] for c in BAD_SCHEDULES]
)
async def test_bad_schedule_names_the_field_and_saves_nothing(
    app_server: RunningApp, county: str, case: str, cron: str, tz: str, field: str
) -> None:
    template = await new_template(app_server.url)
    body = await gql(app_server.url, CREATE, {"t": template, "cron": cron, "tz": tz})
    assert error(body) == ("BAD_USER_INPUT", field), body
    assert field in body["errors"][0]["message"]
    assert (await gql_data(app_server.url, LIST, {"t": None}))["schedules"] == []


async def test_schedule_of_unknown_template_is_refused(app_server: RunningApp) -> None:
    unknown = "00000000-0000-0000-0000-000000000000"
    body = await gql(app_server.url, CREATE, {"t": unknown, "cron": "* * * * *", "tz": "UTC"})
    assert error(body) == ("BAD_USER_INPUT", "templateId")


async def _make_due(engine: AsyncEngine, schedule_id: str, due: dt.datetime) -> None:
    """As if no worker had run since `due` was computed as the next run."""
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE job_schedules SET next_run_at = :due WHERE id = :id"),
            {"due": due, "id": schedule_id},
        )


async def test_runs_missed_while_down_make_one_late_job(
    app_server: RunningApp, worker: WorkerControl, county: str, engine: AsyncEngine
) -> None:
    url = app_server.url
    template = await new_template(url)
    made = await gql_data(url, CREATE, {"t": template, "cron": "0 * * * *", "tz": "UTC"})
    schedule = made["createSchedule"]
    now = dt.datetime.now(UTC)
    last_hour = now.replace(minute=0, second=0, microsecond=0)
    await _make_due(engine, schedule["id"], last_hour - dt.timedelta(hours=5))

    await worker.start()
    for _ in range(200):
        jobs = await scheduled_jobs(url)
        if jobs and jobs[0]["status"] == "COMPLETED":
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(2 * worker.settings.maintenance_interval_seconds + 0.5)
    jobs = await scheduled_jobs(url)
    assert len(jobs) == 1, jobs  # five missed hours plus the last one: one run
    (job,) = jobs
    assert job["late"] is True
    assert job["status"] == "COMPLETED"
    assert (job["scheduleId"], job["templateId"]) == (schedule["id"], template)
    expected_due = last_hour
    assert utc(job["scheduledFor"]) == expected_due
    after = (await gql_data(url, ONE, {"id": schedule["id"]}))["schedule"]
    assert utc(after["lastDueAt"]) == expected_due
    assert after["lastJobId"] == job["id"] and after["lastError"] is None
    assert utc(after["nextRunAt"]) == expected_due + dt.timedelta(hours=1)


@pytest.fixture
async def arq_redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))
    yield pool
    await pool.aclose()


def lifecycles(settings: Settings, redis: ArqRedis, count: int) -> list[Lifecycle]:
    """Lifecycles as `count` separate workers hold them: each with its own engine."""
    return [
        Lifecycle(
            create_session_factory(create_engine(settings.database_url or "")),
            redis,
            settings,
            Metrics(CollectorRegistry(), metric_kinds()),
        )
        for _ in range(count)
    ]


async def test_racing_ticks_and_a_restart_create_one_job_per_due_time(
    app_server: RunningApp,
    county: str,
    engine: AsyncEngine,
    settings: Settings,
    arq_redis: ArqRedis,
) -> None:
    url = app_server.url
    template = await new_template(url)
    made = await gql_data(url, CREATE, {"t": template, "cron": "*/5 * * * *", "tz": "UTC"})
    schedule = made["createSchedule"]
    due = latest_due("*/5 * * * *", "UTC", dt.datetime.now(UTC))
    await _make_due(engine, schedule["id"], due)

    async def owner(_name: str | None) -> Caller | None:
        return ANONYMOUS_ADMIN

    # The due time is up to five minutes old: on time, under this grace.
    settings = settings.model_copy(update={"schedule_late_after_seconds": 600})
    workers = lifecycles(settings, arq_redis, 4)
    created = await asyncio.gather(*(run_due_schedules(lc, owner) for lc in workers * 2))
    assert sum(created) == 1
    # A worker that died after creating the job but before moving the schedule on: the
    # next tick (of a restarted worker) finds the same due time taken.
    await _make_due(engine, schedule["id"], due)
    assert await run_due_schedules(lifecycles(settings, arq_redis, 1)[0], owner) == 0
    jobs = await scheduled_jobs(url)
    assert [utc(j["scheduledFor"]) for j in jobs] == [due]
    assert jobs[0]["late"] is False
    async with engine.connect() as conn:
        keys = (await conn.execute(text("SELECT due_at FROM schedule_runs"))).scalars().all()
        next_run = await conn.scalar(text("SELECT next_run_at FROM job_schedules"))
    assert keys == [due]
    assert next_run == due + dt.timedelta(minutes=5)
    for lc in workers:
        await lc.sessions.kw["bind"].dispose()


async def test_a_revoked_owner_runs_nothing_and_the_schedule_says_why(
    auth_server: RunningApp,
    county: str,
    engine: AsyncEngine,
    auth_settings: Settings,
    arq_redis: ArqRedis,
) -> None:
    url = auth_server.url
    alice = bearer(await issue_token(engine, "alice", ["report:run"]))
    template = await new_template(url, **alice)
    made = await gql(url, CREATE, {"t": template, "cron": "0 6 * * *", "tz": "UTC"}, **alice)
    schedule = made["data"]["createSchedule"]
    assert schedule["owner"] == "alice"
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE api_tokens SET revoked_at = now() WHERE name = 'alice'"))
    due = latest_due("0 6 * * *", "UTC", dt.datetime.now(UTC))
    await _make_due(engine, schedule["id"], due)

    (lifecycle,) = lifecycles(auth_settings, arq_redis, 1)
    tally = Tally()
    await run_schedules(lifecycle, tally)
    assert tally.scheduled == 0
    root = bearer(await issue_token(engine, "root", ["admin"]))
    after = (await gql(url, ONE, {"id": schedule["id"]}, **root))["data"]["schedule"]
    assert "revoked" in after["lastError"] and utc(after["lastDueAt"]) == due
    assert utc(after["nextRunAt"]) == due + dt.timedelta(days=1)
    assert await scheduled_jobs(url, **root) == []
    await lifecycle.sessions.kw["bind"].dispose()


async def test_schedules_are_seen_with_their_template_and_steered_by_their_owner(
    auth_server: RunningApp, county: str, engine: AsyncEngine
) -> None:
    url = auth_server.url
    alice = bearer(await issue_token(engine, "alice", ["report:run"], team="north"))
    dave = bearer(await issue_token(engine, "dave", ["report:run"], team="north"))
    bob = bearer(await issue_token(engine, "bob", ["report:run"], team="south"))
    root = bearer(await issue_token(engine, "root", ["admin"]))
    shared = {"report": {**ROLL["report"], "visibility": "TEAM"}}
    body = await gql(url, TEMPLATE, {"input": shared}, **alice)
    template = body["data"]["createJobTemplate"]["id"]
    made = await gql(url, CREATE, {"t": template, "cron": "0 6 * * 1", "tz": "UTC"}, **alice)
    sid = made["data"]["createSchedule"]["id"]

    def ids(body: dict[str, Any]) -> list[str]:
        return [s["id"] for s in body["data"]["schedules"]]

    assert ids(await gql(url, LIST, {"t": None}, **dave)) == [sid]
    assert ids(await gql(url, LIST, {"t": None}, **bob)) == []
    assert (await gql(url, ONE, {"id": sid}, **bob))["data"]["schedule"] is None
    assert error(await gql(url, PAUSE, {"id": sid}, **dave))[0] == "FORBIDDEN"
    assert error(await gql(url, DELETE, {"id": sid}, **dave))[0] == "FORBIDDEN"
    assert error(await gql(url, PAUSE, {"id": sid}, **bob))[0] == "NOT_FOUND"
    # A teammate may schedule the shared template: the schedule and its jobs are theirs.
    own = await gql(url, CREATE, {"t": template, "cron": "0 7 * * 1", "tz": "UTC"}, **dave)
    assert own["data"]["createSchedule"]["owner"] == "dave"
    refused = await gql(url, CREATE, {"t": template, "cron": "0 7 * * 1", "tz": "UTC"}, **bob)
    assert error(refused) == ("BAD_USER_INPUT", "templateId")
    assert (await gql(url, PAUSE, {"id": sid}, **root))["data"]["pauseSchedule"]["paused"]
    assert (await gql(url, DELETE, {"id": sid}, **alice))["data"]["deleteSchedule"] == sid
