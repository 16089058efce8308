"""Acceptance: a schedule set every minute for five minutes, with two workers and one worker
restart, creates exactly five jobs.

In real time, with two real `terrafusion worker` processes: one is killed (SIGKILL, no
chance to clean up) after a due time and started again a due time later, while the other
runs on. SCHEDULE_ACCEPTANCE_MINUTES (default 5) sets the number of minutes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import signal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.conftest import RunningApp, Workers
from tests.graphql_client import gql_data
from tests.test_schedules import CREATE, PAUSE, new_template, scheduled_jobs, utc

MINUTES = int(os.environ.get("SCHEDULE_ACCEPTANCE_MINUTES", "5"))
MINUTE = dt.timedelta(minutes=1)


async def sleep_until(when: dt.datetime) -> None:
    await asyncio.sleep(max(0.0, (when - dt.datetime.now(dt.UTC)).total_seconds()))


async def test_every_minute_for_five_minutes_two_workers_one_restart_makes_five_jobs(
    fault_app: RunningApp, workers: Workers, county: str, engine: AsyncEngine
) -> None:
    url = fault_app.url
    template = await new_template(url)
    first_worker, _second = workers.start(), workers.start()
    made = await gql_data(url, CREATE, {"t": template, "cron": "* * * * *", "tz": "UTC"})
    schedule = made["createSchedule"]
    first = utc(schedule["nextRunAt"])
    due_times = [first + i * MINUTE for i in range(MINUTES)]

    # Kill one worker just after a due time mid-way, and bring it back a due time later.
    kill_at = first + (MINUTES // 2) * MINUTE + dt.timedelta(seconds=20)
    await sleep_until(kill_at)
    first_worker.send_signal(signal.SIGKILL)
    first_worker.wait(timeout=10)
    await sleep_until(kill_at + MINUTE)
    workers.start()

    # Stop the schedule between its last due time and the one after.
    await sleep_until(due_times[-1] + dt.timedelta(seconds=20))
    paused = (await gql_data(url, PAUSE, {"id": schedule["id"]}))["pauseSchedule"]
    assert paused["paused"] is True

    finished_by = dt.datetime.now(dt.UTC) + MINUTE
    while dt.datetime.now(dt.UTC) < finished_by:
        jobs = await scheduled_jobs(url)
        if len(jobs) >= MINUTES and all(j["status"] == "COMPLETED" for j in jobs):
            break
        await asyncio.sleep(0.2)
    jobs = await scheduled_jobs(url)
    assert sorted(utc(j["scheduledFor"]) for j in jobs) == due_times, jobs
    assert len({j["id"] for j in jobs}) == MINUTES
    assert all(j["status"] == "COMPLETED" for j in jobs), jobs
    assert not any(j["late"] for j in jobs), jobs
    assert {j["scheduleId"] for j in jobs} == {schedule["id"]}
    async with engine.connect() as conn:
        keys = await conn.execute(text("SELECT due_at FROM schedule_runs ORDER BY due_at"))
        assert list(keys.scalars()) == due_times
