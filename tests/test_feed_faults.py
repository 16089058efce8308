"""The live feed through faults: a Redis restarted empty, and the whole fault run.

The fault run is the issue's acceptance: jobs flow from concurrent clients while a worker
is SIGKILLed, database backends are terminated, Redis is killed and restarted empty and the
API (a real `terrafusion serve` process) is SIGKILLed and restarted, and an admin
`jobsUpdated` client resumes with `after:` its last cursor whenever its connection drops.
It must see exactly one final event for every job. FEED_FAULT_JOBS sets the number of jobs
(the README's figures come from a run with 359).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from app.config import Settings
from app.demo_data import load_demo_county
from app.embedded import EmbeddedRedis, free_port
from jobs.changes import encode_cursor
from tests.conftest import ROOT, RunningApp, Workers
from tests.graphql_client import gql_data, subscribe
from tests.test_change_log import CANCEL, FEED, FINAL, feed_until, finals_of, submit
from tests.test_faults import export_job, wait_for_progress, wait_until_final
from tests.test_job_flow import mutation
from tests.test_subscriptions import wait_for_subscribers

INPUTS = [
    ("runReport", {"reportType": "ASSESSMENT_ROLL", "countyId": "TESTCO"}),
    ("runReport", {"reportType": "SALES_RATIO_STUDY", "countyId": "TESTCO"}),
    ("runMarketAnalysis", {"analysisType": "PRICE_TREND", "countyId": "TESTCO"}),
    ("runGisExport", {"exportFormat": "CSV", "countyId": "TESTCO", "layers": ["PARCELS"]}),
]


async def test_a_subscriber_connected_through_a_redis_restart_gets_every_final_once(
    fault_app: RunningApp,
    workers: Workers,
    engine: AsyncEngine,
    own_redis: EmbeddedRedis,
    county: str,
) -> None:
    ids = [(await submit(fault_app))["id"] for _ in range(6)]
    async with subscribe(fault_app.ws_url, FEED) as feed:
        await wait_for_subscribers(fault_app, 1)
        own_redis.stop()
        # Finals while Redis is down: committed, logged, and their events go nowhere.
        for job_id in ids[:3]:
            cancelled = await gql_data(fault_app.url, CANCEL, {"id": job_id})
            assert cancelled["cancelJob"]["status"] == "CANCELLED"
        own_redis.start()
        workers.start()
        events = await feed_until(feed, lambda ev: set(finals_of(ev)) == set(ids), timeout=120)
    finals = [e for e in events if e["status"] in FINAL]
    assert finals_of(events) == collections.Counter({job_id: 1 for job_id in ids})
    assert {e["id"]: e["status"] for e in finals} == {
        **{job_id: "CANCELLED" for job_id in ids[:3]},
        **{job_id: "COMPLETED" for job_id in ids[3:]},
    }
    cursors = [e["changeCursor"] for e in events]
    assert cursors == sorted(cursors)
    assert fault_app.app.state.bus.catch_ups >= 1


async def test_a_resuming_client_gets_the_current_progress_of_a_running_job(
    fault_app: RunningApp, workers: Workers, engine: AsyncEngine
) -> None:
    await load_demo_county(engine, "BIGCO", 5000, seed=3)
    job_id = await export_job(fault_app, "BIGCO")
    worker = workers.start()
    await wait_for_progress(fault_app, job_id)
    # Frozen mid-run: no tick can arrive live, so what the client gets is the replay's.
    worker.send_signal(signal.SIGSTOP)
    try:
        query = "query($id: ID!) { job(id: $id) { status version changeCursor } }"
        now = (await gql_data(fault_app.url, query, {"id": job_id}))["job"]
        async with engine.connect() as conn:
            logged = await conn.scalar(text("SELECT max(version) FROM job_changes"))
        async with subscribe(fault_app.ws_url, FEED, {"after": now["changeCursor"]}) as sub:
            (event,) = await feed_until(sub, lambda ev: len(ev) == 1, timeout=10)
    finally:
        worker.send_signal(signal.SIGCONT)
    assert now["status"] == "RUNNING" and now["version"] > logged
    assert event == {"id": job_id, **now}
    (final,) = await wait_until_final(engine, 1, timeout=90)
    assert final["status"] == "COMPLETED"


# -- the fault run ------------------------------------------------------------------------


class Api:
    """`terrafusion serve --no-worker` on a fixed port, to be killed and started again."""

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/graphql"
        self.env = {
            **os.environ,
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "QUEUE_NAME": settings.queue_name,
            "EVENTS_CHANNEL": settings.events_channel,
            "RESULTS_DIR": str(settings.resolved_results_dir),
            "AUTH_DISABLED": "true",
        }
        self.data_dir = data_dir
        self.process: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "serve",
                "--no-worker",
                "--no-demo",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        async with httpx.AsyncClient(base_url=self.url) as client:
            for _ in range(300):
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get("/healthz")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise AssertionError("the API did not come up")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=20)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


@pytest.fixture
def api(fault_settings: Settings, tmp_path: Path) -> Iterator[Api]:
    server = Api(fault_settings, tmp_path / "api")
    yield server
    server.stop()


class ResumingFeed:
    """An admin `jobsUpdated` client that reconnects with `after:` its last cursor."""

    def __init__(self, ws_url: str) -> None:
        self.ws_url = ws_url
        self.cursor = encode_cursor(0)
        self.finals: collections.Counter[str] = collections.Counter()
        self.events = 0
        self.reconnects = 0
        self.out_of_order = 0
        self.errors: list[str] = []

    async def run(self) -> None:
        while True:
            try:
                async with subscribe(self.ws_url, FEED, {"after": self.cursor}) as sub:
                    while True:
                        payload = await sub.next(timeout=3600)
                        assert payload is not None, "the feed completed"
                        if "errors" in payload:
                            # e.g. SERVICE_UNAVAILABLE while backends are terminated: resume.
                            self.errors.append(payload["errors"][0]["extensions"]["code"])
                            break
                        event = payload["data"]["jobsUpdated"]
                        self.out_of_order += event["changeCursor"] < self.cursor
                        self.cursor = event["changeCursor"]
                        self.events += 1
                        if event["status"] in FINAL:
                            self.finals[event["id"]] += 1
            except (
                OSError,
                websockets.ConnectionClosed,
                websockets.InvalidHandshake,
                TimeoutError,
            ):
                pass
            self.reconnects += 1
            await asyncio.sleep(0.2)


async def _submit_until_accepted(api: Api, name: str, input: dict[str, Any]) -> str | None:
    """A client that retries while the API is away; None if it never answered."""
    for _ in range(300):
        try:
            async with httpx.AsyncClient(base_url=api.url, timeout=10) as client:
                response = await client.post(
                    "/graphql", json={"query": mutation(name), "variables": {"input": input}}
                )
            body = response.json()
        except (httpx.HTTPError, ValueError):
            await asyncio.sleep(0.2)
            continue
        if "errors" in body:
            code = body["errors"][0].get("extensions", {}).get("code")
            assert code == "SERVICE_UNAVAILABLE", body
            await asyncio.sleep(0.2)
            continue
        return str(body["data"][name]["id"])
    return None


async def _terminate_backends(engine: AsyncEngine) -> int:
    """Every other connection to the test database, once the pools have some again.

    From a connection of its own: a pooled one of `engine` may be one an earlier round
    killed. Afterwards `engine`'s pool is emptied, so the test's own later reads start on
    live connections (the app's pools are what the fault is aimed at).
    """
    killer = create_async_engine(engine.url, poolclass=NullPool)
    try:
        for _ in range(100):
            async with killer.connect() as conn:
                killed = await conn.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                count = len(killed.all())
            if count:
                await engine.dispose()
                return count
            await asyncio.sleep(0.05)
        return 0
    finally:
        await killer.dispose()


@contextlib.asynccontextmanager
async def running(task: Any) -> AsyncIterator[asyncio.Task[None]]:
    future = asyncio.ensure_future(task)
    try:
        yield future
    finally:
        future.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await future


async def test_fault_run_with_a_resuming_feed_misses_and_repeats_no_final(
    api: Api,
    workers: Workers,
    engine: AsyncEngine,
    own_redis: EmbeddedRedis,
    county: str,
) -> None:
    total = int(os.environ.get("FEED_FAULT_JOBS", "48"))
    clients = 8
    await api.start()
    first = workers.start()
    workers.start()
    feed = ResumingFeed(api.ws_url)
    accepted: list[str] = []
    started = time.monotonic()
    faults: list[str] = []

    async def client(number: int) -> None:
        for i in range(number, total, clients):
            name, input = INPUTS[i % len(INPUTS)]
            job_id = await _submit_until_accepted(api, name, input)
            if job_id is not None:
                accepted.append(job_id)

    async def chaos() -> None:
        async def when(fraction: float) -> None:
            while len(accepted) < total * fraction:
                await asyncio.sleep(0.05)

        await when(0.15)
        first.send_signal(signal.SIGKILL)
        workers.start()
        faults.append("worker SIGKILL")
        for round, fraction in enumerate((0.25, 0.32, 0.4)):
            await when(fraction)
            killed = await _terminate_backends(engine)
            faults.append(f"terminated {killed} backends (round {round + 1})")
        await when(0.5)
        own_redis.stop()
        await asyncio.sleep(1.0)
        own_redis.start()
        faults.append("Redis killed, restarted empty")
        await when(0.7)
        api.kill()
        faults.append("API SIGKILL")
        await asyncio.sleep(1.0)
        await api.start()
        faults.append("API restarted")

    async with running(feed.run()):
        async with running(chaos()) as chaos_task:
            await asyncio.gather(*(client(n) for n in range(clients)))
            await chaos_task
        done = await wait_until_final(engine, len(accepted), timeout=300)
        rows = {str(r.get("report_id") or r.get("job_id")) for r in done}
        deadline = time.monotonic() + 60
        while set(feed.finals) < rows and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    elapsed = time.monotonic() - started
    missed = [job for job in accepted if feed.finals[job] == 0]
    duplicated = [job for job, n in feed.finals.items() if n > 1]
    states = collections.Counter(r["status"] for r in done)
    print(
        json.dumps(
            {
                "accepted": len(accepted),
                "rows": len(done),
                "states": dict(states),
                "final_events": sum(feed.finals.values()),
                "missed": len(missed),
                "duplicated": len(duplicated),
                "feed_events": feed.events,
                "feed_reconnects": feed.reconnects,
                "feed_errors": collections.Counter(feed.errors),
                "faults": faults,
                "seconds": round(elapsed, 1),
            }
        )
    )
    assert len(faults) == 7, faults
    assert set(accepted) <= rows
    assert missed == [] and duplicated == []
    assert set(feed.finals) == rows
    assert feed.out_of_order == 0
    assert feed.reconnects >= 1
    assert set(feed.errors) <= {"SERVICE_UNAVAILABLE"}
