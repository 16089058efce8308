"""Fixtures: real PostgreSQL and Redis, a real uvicorn server, a real arq worker.

TEST_DATABASE_URL / TEST_REDIS_URL name servers to use (this team's machines run both);
unset, embedded ones are started in a temporary folder. Each test run gets a database of
its own, every test starts from empty tables, and every test gets its own queue and event
channel names, so nothing leaks between tests or into other users of a shared Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import uvicorn
from arq import create_pool
from arq.connections import ArqRedis, RedisSettings
from redis.asyncio import Redis
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from app.config import Settings
from app.db import HotRows, create_engine
from app.embedded import EmbeddedPostgres, EmbeddedRedis, free_port
from app.main import create_app
from app.migrate import upgrade
from app.models import Base
from app.websocket_server import server_options
from jobs.worker import run_worker
from tests.builders import load_small_county

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def data_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="tf-test-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def postgres_server(data_dir: Path) -> Iterator[str]:
    """A PostgreSQL server URL: TEST_DATABASE_URL's, or an embedded one stopped at the end."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    server = EmbeddedPostgres(data_dir / "pg", database="postgres")
    yield server.url
    server.stop()


async def _admin(url: str, sql: str) -> None:
    parsed = make_url(url)
    conn = await asyncpg.connect(
        user=parsed.username,
        password=parsed.password,
        host=parsed.host or parsed.query.get("host"),
        port=parsed.port,
        database=parsed.database,
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def database_url(postgres_server: str) -> Iterator[str]:
    """A fresh, migrated database for this test run, dropped afterwards."""
    server = postgres_server
    name = f"tf_test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(server, f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    yield url
    asyncio.run(_admin(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def empty_database(database_url: str) -> Iterator[str]:
    """A database with no tables at all, for tests of migrating from nothing."""
    name = f"tf_migrate_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(database_url, f'CREATE DATABASE "{name}"'))
    yield make_url(database_url).set(database=name).render_as_string(hide_password=False)
    asyncio.run(_admin(database_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def redis_url(data_dir: Path) -> Iterator[str]:
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis(data_dir).start()
    yield server.url
    server.stop()


@pytest.fixture
def settings(database_url: str, redis_url: str, tmp_path: Path) -> Settings:
    prefix = f"tf-test:{uuid.uuid4().hex[:10]}"
    return Settings(
        database_url=database_url,
        redis_url=redis_url,
        data_dir=tmp_path,
        results_dir=tmp_path / "results",
        queue_name=f"{prefix}:queue",
        events_channel=f"{prefix}:events",
        worker_metrics_port=0,
        progress_min_interval_seconds=0,
        # Tests of jobs, not of access: one anonymous admin. tests/test_auth*.py turn it on.
        auth_disabled=True,
    )


@pytest.fixture(scope="session")
async def session_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def engine(session_engine: AsyncEngine) -> AsyncEngine:
    """The test database with every table emptied."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with session_engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return session_engine


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    client = Redis.from_url(settings.redis_url or "", decode_responses=True)
    yield client
    keys = [k async for k in client.scan_iter(match=f"{settings.queue_name}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def county(engine: AsyncEngine) -> str:
    """A small synthetic county, loaded through the importer's COPY path."""
    return await load_small_county(engine)


@pytest.fixture
async def arq_redis(settings: Settings) -> AsyncIterator[ArqRedis]:
    """arq's client of the test's Redis, as the API and workers make it."""
    pool = await create_pool(RedisSettings.from_dsn(settings.redis_url or ""))
    yield pool
    await pool.aclose()


@pytest.fixture
async def hot(engine: AsyncEngine) -> AsyncIterator[HotRows]:
    """asyncpg's own pool (app.db.HotRows) on the test's database."""
    rows = HotRows(engine, size=2)
    await rows.start()
    yield rows
    await rows.close()


class RunningApp:
    def __init__(self, app: Starlette, port: int) -> None:
        self.app = app
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/graphql"


@contextlib.asynccontextmanager
async def serve_app(settings: Settings, port: int | None = None) -> AsyncIterator[RunningApp]:
    """The real ASGI app under uvicorn on `port` (a restart keeps its clients' URL), or a
    free loopback port."""
    port = port or _free_port()
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        **server_options(settings),
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield RunningApp(app, port)
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=15)


@pytest.fixture
async def app_server(settings: Settings, engine: AsyncEngine) -> AsyncIterator[RunningApp]:
    async with serve_app(settings) as running:
        yield running


@pytest.fixture
def auth_settings(settings: Settings) -> Settings:
    """Authentication on, with limits small and checks quick enough to test in seconds."""
    return settings.model_copy(
        update={
            "auth_disabled": False,
            "ws_auth_recheck_seconds": 0.2,
            "ws_init_timeout_seconds": 1.0,
            "max_subscriptions_per_connection": 3,
            "max_subscriptions_per_token": 5,
        }
    )


@pytest.fixture
async def auth_server(auth_settings: Settings, engine: AsyncEngine) -> AsyncIterator[RunningApp]:
    async with serve_app(auth_settings) as running:
        yield running


class WorkerControl:
    """Start a real arq worker on the test's queue when the test is ready for it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.task: asyncio.Task[None] | None = None

    async def start(self, **overrides: object) -> None:
        self.task = asyncio.create_task(run_worker(self.settings, **overrides))

    async def stop(self) -> None:
        if self.task is None:
            return
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[WorkerControl]:
    control = WorkerControl(settings)
    yield control
    await control.stop()


class Workers:
    """`terrafusion worker` processes sharing the test's database, Redis and queue."""

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": settings.database_url or "",
            "REDIS_URL": settings.redis_url or "",
            "QUEUE_NAME": settings.queue_name,
            "EVENTS_CHANNEL": settings.events_channel,
            "RESULTS_DIR": str(settings.resolved_results_dir),
            "STALE_AFTER_SECONDS": "2",
            "HEARTBEAT_INTERVAL_SECONDS": "0.3",
            "MAINTENANCE_INTERVAL_SECONDS": "1",
            "PROGRESS_MIN_INTERVAL_SECONDS": "0",
            "RETRY_BACKOFF_SECONDS": "0.2",
            "MAX_ATTEMPTS": "4",
            # As the API's: a schedule's owner is looked up as the API would look it up.
            "AUTH_DISABLED": str(settings.auth_disabled).lower(),
        }
        self.data_dir = data_dir
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "app.cli",
                "worker",
                "--data-dir",
                str(self.data_dir),
                "--metrics-port",
                "0",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    def stop_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    server = EmbeddedRedis(tmp_path / "own-redis", port=free_port()).start()
    yield server
    server.stop()


@pytest.fixture
def fault_settings(settings: Settings, own_redis: EmbeddedRedis) -> Settings:
    return settings.model_copy(update={"redis_url": own_redis.url})


@pytest.fixture
async def fault_app(fault_settings: Settings, engine: AsyncEngine) -> AsyncIterator[RunningApp]:
    async with serve_app(fault_settings) as running:
        yield running


@pytest.fixture
def workers(fault_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(fault_settings, tmp_path)
    yield pool
    pool.stop_all()
